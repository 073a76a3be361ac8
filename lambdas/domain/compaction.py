"""The compacted current state of the purchases: an Iceberg table maintained by Athena (pure Python, no boto3).

Why: every change of a purchase is one small JSON object (the audit trail, ``compras_json``), and the view
``compras_actuales`` ranks the whole history on every query. The Iceberg table ``compras_iceberg`` (Parquet,
partitioned by ``tenant_id`` and ``dia``) holds one row per purchase — its latest change — so the named queries
read a few large columnar files instead (view ``compras_vigentes``, athena-queries.sql).

This module builds every statement the maintenance function (``compactarCompras``) runs, and decides what a run
does (:func:`plan_run`) from its state (:class:`CompactionState`, one small JSON object in the bucket):

* ``CREATE TABLE IF NOT EXISTS`` (Athena Iceberg DDL) on every run: the first scheduled run after a deploy
  creates the table, no manual step.
* ``MERGE INTO`` from the JSON changes not merged yet: per (tenant_id, compra_id) the latest change of the window
  wins, ordered exactly like the view (sequence number by length then text, then approximate creation time), and
  it replaces the table's row only when it is newer than that row (:func:`newer_than` — so a replayed, repeated
  or concurrent run, or a late *older* change, changes nothing). A REMOVE replaces the row by a *tombstone*
  (``eliminada = true``, no products, no totals): a late older change of a deleted purchase cannot bring it
  back. Tombstones older than ``tombstoneRetentionDays`` are deleted on the slow cadence.
* Windows and watermarks (the "never skip a late change" design, docs/compaction.md): a change is selected by
  its ``metadata.processed_at`` (the export's clock) being after ``watermark - safetyLag``. The watermark is the
  time the run *started*, recorded only after the MERGE committed. Any change stamped before a run started but
  not yet visible to it (an export still writing, a retried batch, clock skew) is at most ``safetyLag`` old when
  the next run starts, so the next window still holds it; re-merging the overlap is a no-op (newer-than guard).
  Two cadences: the frequent *incremental* run reads only the partitions of the last ``recentDays`` days (most
  changes are of recent purchases: cheap), the slower *full* run reads every partition (late corrections of old
  purchases, re-exports of old days) with its own watermark. So a change is merged by the next incremental run
  if its purchase is recent, and by the next full run in any case.
* ``OPTIMIZE … REWRITE DATA USING BIN_PACK`` and ``VACUUM`` on slower cadences (compact the small files the
  MERGEs leave; expire old snapshots and remove unreferenced files).

Everything is plain Athena SQL (Trino dialect) built with sqlglot-friendly syntax: the local stand-in
(local/compaction.py) transpiles the same MERGE to DuckDB and runs it over Parquet files in the local bucket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# Table and view names used by athena-queries.sql (the Iceberg table's name comes from config: names.icebergTable).
SOURCE_TABLE = "compras_json"
PARTITION_COLUMNS = ("tenant_id", "dia")
# Columns of the JSON documents copied as they are (config/pipeline.yml catalog.columns, in that order).
DOCUMENT_COLUMNS = ("compra_id", "user_id", "fecha", "productos", "resumen", "metadata")
# Columns emptied in a tombstone (the purchase's data is deleted; its key and ordering stay).
TOMBSTONE_NULLED = ("user_id", "productos", "resumen")
STATE_VERSION = 1


class CompactionConfigError(ValueError):
    """The compaction settings are unusable (what, which value, why in the message)."""


# ------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CompactionSettings:
    """Cadences and windows of the maintenance function (config/pipeline.yml functions.compaction)."""

    safety_lag: timedelta
    recent_days: int
    full_every: timedelta
    optimize_every: timedelta
    vacuum_every: timedelta
    tombstone_retention: timedelta

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CompactionSettings:
        def number(key: str, minimum: float) -> float:
            value = cfg.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
                raise CompactionConfigError(f"functions.compaction.{key} = {value!r}: expected a number >= {minimum}")
            return float(value)

        settings = cls(
            safety_lag=timedelta(minutes=number("safetyLagMinutes", 1)),
            recent_days=int(number("recentDays", 1)),
            full_every=timedelta(hours=number("fullMergeEveryHours", 1)),
            optimize_every=timedelta(hours=number("optimizeEveryHours", 1)),
            vacuum_every=timedelta(hours=number("vacuumEveryHours", 1)),
            tombstone_retention=timedelta(days=number("tombstoneRetentionDays", 1)),
        )
        if settings.tombstone_retention <= settings.full_every + settings.safety_lag:
            raise CompactionConfigError(
                "functions.compaction.tombstoneRetentionDays must exceed fullMergeEveryHours + safetyLagMinutes: "
                "a tombstone must outlive every window that could still hold an older change of its purchase"
            )
        return settings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CompactionSettings:
        """The same settings from the function's environment (serverless.yml passes the config values)."""
        keys = {
            "safetyLagMinutes": "COMPACTION_SAFETY_LAG_MINUTES",
            "recentDays": "COMPACTION_RECENT_DAYS",
            "fullMergeEveryHours": "COMPACTION_FULL_MERGE_EVERY_HOURS",
            "optimizeEveryHours": "COMPACTION_OPTIMIZE_EVERY_HOURS",
            "vacuumEveryHours": "COMPACTION_VACUUM_EVERY_HOURS",
            "tombstoneRetentionDays": "COMPACTION_TOMBSTONE_RETENTION_DAYS",
        }
        values: dict[str, Any] = {}
        for key, variable in keys.items():
            raw = env.get(variable)
            try:
                values[key] = float(raw) if raw is not None else None
            except ValueError:
                raise CompactionConfigError(f"environment variable {variable} = {raw!r}: expected a number") from None
            if raw is None:
                raise CompactionConfigError(
                    f"environment variable {variable} is not set: serverless.yml sets it from config/pipeline.yml "
                    f"functions.compaction.{key}"
                )
        return cls.from_config(values)


@dataclass(frozen=True)
class TableNames:
    """Where the statements point: the Iceberg table, its S3 location, the JSON source table."""

    iceberg_table: str
    location: str  # s3://bucket/prefix/ of the Iceberg table (data and metadata)
    source_table: str = SOURCE_TABLE

    def __post_init__(self) -> None:
        for value in (self.iceberg_table, self.source_table):
            if not value.replace("_", "").isalnum() or not value[0].isalpha():
                raise CompactionConfigError(f"table name {value!r}: expected [a-z][a-z0-9_]*")
        if not self.location.startswith("s3://") or "'" in self.location or not self.location.endswith("/"):
            raise CompactionConfigError(f"table location {self.location!r}: expected s3://bucket/prefix/")


# ---------------------------------------------------------------------------------------------------- state


def _iso(moment: datetime) -> str:
    """The export's processed_at format (documents.py): UTC, ISO 8601, microseconds, '+00:00'."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r}: a timezone-aware datetime is required")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"compaction state: {what} = {value!r} is not an ISO timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"compaction state: {what} = {value!r} has no timezone")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class CompactionState:
    """What the maintenance runs have committed. Every field only moves forward (:meth:`merged_with`).

    ``recent_watermark`` / ``full_watermark``: start time of the last committed incremental / full MERGE (a
    full MERGE also covers the recent partitions, so it advances both). ``last_*``: when OPTIMIZE, VACUUM and
    the tombstone purge last succeeded. ``table_created``: the DDL has run once (it is idempotent anyway).
    """

    recent_watermark: datetime | None = None
    full_watermark: datetime | None = None
    last_merge_at: datetime | None = None
    last_optimize_at: datetime | None = None
    last_vacuum_at: datetime | None = None
    last_purge_at: datetime | None = None
    merges: int = 0

    def to_json(self) -> str:
        data: dict[str, Any] = {"version": STATE_VERSION}
        for key, value in asdict(self).items():
            data[key] = _iso(value) if isinstance(value, datetime) else value
        return json.dumps(data, sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> CompactionState:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"compaction state is not JSON: {error}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"compaction state: unsupported version {data.get('version')!r} (expected 1)")
        merges = data.get("merges", 0)
        if not isinstance(merges, int) or merges < 0:
            raise ValueError(f"compaction state: merges = {merges!r} is not a count")
        return cls(
            **{name: _parse(data.get(name), name) for name in _TIME_FIELDS},
            merges=merges,
        )

    def merged_with(self, other: CompactionState) -> CompactionState:
        """Field by field the later value: a slow concurrent run can never move a watermark back."""

        def later(a: datetime | None, b: datetime | None) -> datetime | None:
            return max((x for x in (a, b) if x is not None), default=None)

        return CompactionState(
            **{name: later(getattr(self, name), getattr(other, name)) for name in _TIME_FIELDS},
            merges=max(self.merges, other.merges),
        )


_TIME_FIELDS = (
    "recent_watermark",
    "full_watermark",
    "last_merge_at",
    "last_optimize_at",
    "last_vacuum_at",
    "last_purge_at",
)


# ----------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class RunPlan:
    """What one run does. ``since``: changes processed after it are merged (None = all history);
    ``from_day``: only partitions of that day and later ('YYYY-MM-DD', None = every partition)."""

    started_at: datetime
    mode: str  # "full" | "recent"
    since: datetime | None
    from_day: str | None
    optimize: bool
    vacuum: bool
    purge_tombstones_before: datetime | None

    def committed(self, state: CompactionState) -> CompactionState:
        """The state once this run's MERGE has committed (watermarks = this run's start)."""
        advanced = replace(
            state,
            recent_watermark=self.started_at,
            full_watermark=self.started_at if self.mode == "full" else state.full_watermark,
            last_merge_at=self.started_at,
            merges=state.merges + 1,
        )
        return state.merged_with(advanced)

    def maintained(self, state: CompactionState, step: str) -> CompactionState:
        """The state once the slow-cadence step (optimize | vacuum | purge) has succeeded."""
        field = {"optimize": "last_optimize_at", "vacuum": "last_vacuum_at", "purge": "last_purge_at"}[step]
        return state.merged_with(replace(state, **{field: self.started_at}))


def plan_run(
    state: CompactionState, now: datetime, settings: CompactionSettings, *, force_full: bool = False
) -> RunPlan:
    """Decide the run: full when no full MERGE committed within ``full_every`` (or ever) or when asked
    (``force_full``: an operator's ``{"full": true}`` invocation), else recent partitions only."""
    if now.tzinfo is None:
        raise ValueError("plan_run: `now` must be timezone-aware")
    now = now.astimezone(UTC)
    full = force_full or state.full_watermark is None or now - state.full_watermark >= settings.full_every
    if full:
        watermark = state.full_watermark
        from_day = None
    else:
        # The recent watermark is never older than the full one (a full run advances both).
        watermark = state.recent_watermark or state.full_watermark
        from_day = (now - timedelta(days=settings.recent_days)).date().isoformat()
    since = watermark - settings.safety_lag if watermark is not None else None

    def due(last: datetime | None, every: timedelta) -> bool:
        return last is None or now - last >= every

    return RunPlan(
        started_at=now,
        mode="full" if full else "recent",
        since=since,
        from_day=from_day,
        optimize=due(state.last_optimize_at, settings.optimize_every),
        vacuum=due(state.last_vacuum_at, settings.vacuum_every),
        purge_tombstones_before=(now - settings.tombstone_retention)
        if due(state.last_purge_at, settings.vacuum_every)
        else None,
    )


# ---------------------------------------------------------------------------------------------------- SQL


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def table_columns(catalog_columns: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """(name, Hive/Glue type) of the Iceberg table: partition columns, the document's columns, the tombstone flag."""
    by_name = {c["Name"]: c["Type"] for c in catalog_columns}
    missing = [name for name in DOCUMENT_COLUMNS if name not in by_name]
    if missing:
        raise CompactionConfigError(f"catalog.columns lacks {missing}: the Iceberg table copies those columns")
    return [
        ("tenant_id", "string"),
        ("dia", "string"),
        *((name, by_name[name]) for name in DOCUMENT_COLUMNS),
        ("eliminada", "boolean"),
    ]


def create_table_sql(names: TableNames, catalog_columns: Sequence[Mapping[str, str]]) -> str:
    """Athena DDL of the Iceberg table (idempotent). Parquet + ZSTD; partitions match the queries' filters."""
    columns = ",\n".join(f"    `{name}` {kind}" for name, kind in table_columns(catalog_columns))
    return (
        f"CREATE TABLE IF NOT EXISTS `{names.iceberg_table}` (\n{columns}\n)\n"
        f"PARTITIONED BY ({', '.join(f'`{c}`' for c in PARTITION_COLUMNS)})\n"
        f"LOCATION {_quote(names.location)}\n"
        "TBLPROPERTIES (\n"
        "    'table_type' = 'ICEBERG',\n"
        "    'format' = 'PARQUET',\n"
        "    'write_compression' = 'ZSTD',\n"
        "    'optimize_rewrite_delete_file_threshold' = '2',\n"
        "    'vacuum_max_snapshot_age_seconds' = '604800'\n"
        ")"
    )


def version_order(alias: str) -> str:
    """ORDER BY terms, newest first: the view's ordering (sequence number by length then text, then time)."""
    return (
        f"length({alias}.metadata.sequence_number) DESC, {alias}.metadata.sequence_number DESC, "
        f"{alias}.metadata.approximate_creation_time DESC"
    )


def newer_than(new: str, old: str) -> str:
    """`new` is a strictly later change than `old`, by :func:`version_order` (a predicate)."""
    ns, os_ = f"{new}.metadata.sequence_number", f"{old}.metadata.sequence_number"
    nt, ot = f"{new}.metadata.approximate_creation_time", f"{old}.metadata.approximate_creation_time"
    return (
        f"(length({ns}) > length({os_}) "
        f"OR (length({ns}) = length({os_}) AND {ns} > {os_}) "
        f"OR ({ns} = {os_} AND {nt} > {ot}))"
    )


def changes_sql(source_table: str, since: datetime | None, from_day: str | None) -> str:
    """The latest change per purchase among the selected changes, shaped like a row of the Iceberg table."""
    conditions = []
    if since is not None:
        conditions.append(f"c.metadata.processed_at > {_quote(_iso(since))}")
    if from_day is not None:
        if len(from_day) != 10 or from_day[4] != "-" or from_day[7] != "-":
            raise ValueError(f"from_day {from_day!r}: expected YYYY-MM-DD")
        # Partition columns only: Athena prunes the partitions before reading.
        conditions.append(f"concat(c.year, '-', c.month, '-', c.day) >= {_quote(from_day)}")
    where = f"\n        WHERE {' AND '.join(conditions)}" if conditions else ""
    removed = "v.metadata.event_name = 'REMOVE'"
    document = []
    for name in DOCUMENT_COLUMNS:
        if name in TOMBSTONE_NULLED:
            document.append(f"CASE WHEN {removed} THEN NULL ELSE v.{name} END AS {name}")
        else:
            document.append(f"v.{name}")
    return (
        "SELECT v.tenant_id, v.dia, "  # noqa: S608  # nosec B608 - validated identifiers, literals built from datetimes by _quote
        + ", ".join(document)
        + f", {removed} AS eliminada\n"
        "    FROM (\n"
        "        SELECT\n"
        "            c.tenant_id, concat(c.year, '-', c.month, '-', c.day) AS dia, "
        + ", ".join(f"c.{name}" for name in DOCUMENT_COLUMNS)
        + ",\n"
        f"            row_number() OVER (PARTITION BY c.tenant_id, c.compra_id ORDER BY {version_order('c')})"
        " AS version_rank\n"
        f"        FROM {source_table} AS c{where}\n"
        "    ) AS v\n"
        "    WHERE v.version_rank = 1"
    )


def merge_sql(names: TableNames, plan: RunPlan) -> str:
    """Athena MERGE INTO: the window's latest change per purchase replaces an older row, or is inserted."""
    columns = ["tenant_id", "dia", *DOCUMENT_COLUMNS, "eliminada"]
    assignments = ", ".join(f"{name} = s.{name}" for name in columns if name not in ("tenant_id", "compra_id"))
    return (
        f"MERGE INTO {names.iceberg_table} AS t\n"  # noqa: S608  # nosec B608 - validated identifiers, literals built from datetimes by _quote
        f"USING (\n    {changes_sql(names.source_table, plan.since, plan.from_day)}\n) AS s\n"
        "ON t.tenant_id = s.tenant_id AND t.compra_id = s.compra_id\n"
        f"WHEN MATCHED AND {newer_than('s', 't')} THEN UPDATE SET {assignments}\n"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join(f's.{c}' for c in columns)})"
    )


def purge_tombstones_sql(names: TableNames, before: datetime) -> str:
    """Delete tombstones whose REMOVE was exported before `before` (no window can hold older changes of them)."""
    return (
        f"DELETE FROM {names.iceberg_table} "  # noqa: S608  # nosec B608 - validated identifiers, literals built from datetimes by _quote
        f"WHERE eliminada AND metadata.processed_at < {_quote(_iso(before))}"
    )


def optimize_sql(names: TableNames) -> str:
    """Athena: rewrite the small files MERGE leaves into larger ones (and apply its delete files)."""
    return f"OPTIMIZE {names.iceberg_table} REWRITE DATA USING BIN_PACK"


def vacuum_sql(names: TableNames) -> str:
    """Athena: expire snapshots older than the table's vacuum_max_snapshot_age_seconds, delete orphan files."""
    return f"VACUUM {names.iceberg_table}"


@dataclass(frozen=True)
class Statement:
    step: str  # create | merge | purge | optimize | vacuum
    sql: str


def statements(plan: RunPlan, names: TableNames, catalog_columns: Sequence[Mapping[str, str]]) -> list[Statement]:
    """Every statement of the run, in order. The state is saved after `merge` and after each later step."""
    steps = [Statement("create", create_table_sql(names, catalog_columns)), Statement("merge", merge_sql(names, plan))]
    if plan.purge_tombstones_before is not None:
        steps.append(Statement("purge", purge_tombstones_sql(names, plan.purge_tombstones_before)))
    if plan.optimize:
        steps.append(Statement("optimize", optimize_sql(names)))
    if plan.vacuum:
        steps.append(Statement("vacuum", vacuum_sql(names)))
    return steps


# ------------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class StepResult:
    step: str
    query_id: str = ""
    data_scanned_bytes: int = 0
    seconds: float = 0.0


class Engine(Protocol):
    """Runs one statement to completion (Athena on AWS, DuckDB + Parquet locally); raises when it fails."""

    def execute(self, statement: Statement) -> StepResult: ...


class StateStore(Protocol):
    """Where the state lives (one JSON object in the bucket)."""

    def load(self) -> CompactionState: ...

    def save(self, state: CompactionState) -> None: ...


@dataclass(frozen=True)
class RunResult:
    plan: RunPlan
    steps: list[StepResult]
    state: CompactionState


def run_maintenance(
    engine: Engine,
    store: StateStore,
    *,
    settings: CompactionSettings,
    names: TableNames,
    catalog_columns: Sequence[Mapping[str, str]],
    now: datetime,
    force_full: bool = False,
) -> RunResult:
    """One maintenance run: DDL, MERGE, then the due slow-cadence steps, in order.

    The state is saved after each step that succeeded, re-read first and merged field by field
    (:meth:`CompactionState.merged_with`), so a concurrent run never moves it back. A failing step raises
    and leaves the state as the last successful step left it: the next run repeats what did not commit.
    """
    plan = plan_run(store.load(), now, settings, force_full=force_full)
    results: list[StepResult] = []
    state = store.load()
    for statement in statements(plan, names, catalog_columns):
        results.append(engine.execute(statement))
        if statement.step == "merge":
            state = plan.committed(store.load())
            store.save(state)
        elif statement.step in ("purge", "optimize", "vacuum"):
            state = plan.maintained(store.load(), statement.step)
            store.save(state)
    return RunResult(plan=plan, steps=results, state=state)
