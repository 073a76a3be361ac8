"""Run the Athena queries of athena-queries.sql locally: sqlglot (Athena -> DuckDB) over the exported JSON.

What Athena does on AWS, done here on one machine:

* the table ``compras_json`` is built from the JSON objects the stream export wrote under ``compras/``
  (read through boto3 — DuckDB has no httpfs here — into a temporary directory), read by DuckDB's
  ``read_json`` with the explicit Glue schema of config/pipeline.yml ``catalog.columns`` (without it DuckDB
  would guess types, e.g. ``fecha`` as TIMESTAMP), one document per line;
* the partition columns tenant_id / year / month / day come from each object's key, ids decoded with
  ``lambdas.domain.keys.parse_object_key`` (exactly what Glue's partition values are); objects whose key does
  not follow the layout are skipped and listed in ``skipped_keys`` (Athena would never see them as
  documents of a partition either);
* the compacted table ``compras_iceberg`` (docs/compaction.md) is a DuckDB table: with a bucket it holds the
  Parquet files of the last snapshot the local maintenance (local/compaction.py) committed there (empty when
  none ran yet, like Athena before the first compactarCompras run); with :meth:`LocalAthena.load_objects`
  (tests) it is filled by one full MERGE of the loaded documents — the same transpiled SQL;
* the views of the file are created (transpiled), then any named query runs with bound parameters
  (``read_from="compras_actuales"`` runs it over the JSON view instead of the compacted state).

Dialect gaps fixed here, not in the SQL (see docs/athena.md and ../shared notes):

* ``date_diff(unit, a, b)`` counts whole units in Trino; DuckDB's ``date_diff`` counts boundaries, so it
  becomes DuckDB's ``date_sub(unit, a, b)`` (whole units);
* integer division ``7 / 2`` is 3 in Trino: the connection sets DuckDB's ``integer_division``;
* ``format_datetime(ts, 'Joda pattern')`` becomes ``strftime(ts, '%…')`` (pattern translated);
* ``any_match`` / ``all_match`` / ``none_match`` become list_bool_or / list_bool_and over list_transform;
* ``CROSS JOIN UNNEST(array_of_rows) AS t(a, b, c)`` (Trino expands the row's fields into columns) becomes
  a lateral subquery that expands the struct.
Anything sqlglot cannot parse raises :class:`LocalQueryError` naming the query.

API: ``LocalAthena(bucket, prefix, aws=clients).run(name, tenant_id=…, date_from=…, date_to=…) -> QueryResult``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

import pipeline_config as config
from lambdas.adapters.clients import AwsClients
from lambdas.domain import compaction, keys, queries

TABLE = "compras_json"
ICEBERG_TABLE = config.raw_config()["names"]["icebergTable"]
# The local stand-in of an Iceberg snapshot: the Parquet files (hive layout tenant_id=…/dia=…) it lists.
SNAPSHOT_POINTER = "local-snapshot.json"


def iceberg_prefix() -> str:
    """Key prefix of the Iceberg table in the bucket: prefixes.iceberg + names.icebergTable + '/'."""
    return f"{config.prefixes()['iceberg']}{ICEBERG_TABLE}/"


def iceberg_columns() -> list[tuple[str, str]]:
    """(name, DuckDB type) of the compacted table, from the same definition as the Athena DDL."""
    return [(name, duckdb_type(kind)) for name, kind in compaction.table_columns(config.catalog()["columns"])]


class LocalQueryError(RuntimeError):
    """A query could not be transpiled or failed on DuckDB (the message names the query and why)."""


@dataclass(frozen=True)
class QueryResult:
    name: str
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# --- Glue types -> DuckDB types -------------------------------------------------------------------------------


def duckdb_type(glue_type: str) -> str:
    """Translate a Hive/Glue type (``array<struct<a:int,...>>``, ``decimal(18,4)``) to DuckDB syntax."""
    parser = _TypeParser(glue_type)
    result = parser.parse()
    if parser.pos != len(parser.text):
        raise ValueError(f"Glue type {glue_type!r}: unexpected text at {parser.text[parser.pos :]!r}")
    return result


_SIMPLE_TYPES = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


class _TypeParser:
    def __init__(self, text: str) -> None:
        self.text = text.replace(" ", "")
        self.pos = 0

    def _take(self, pattern: str) -> str:
        match = re.compile(pattern).match(self.text, self.pos)
        if not match:
            raise ValueError(f"Glue type {self.text!r}: expected {pattern!r} at position {self.pos}")
        self.pos = match.end()
        return match.group(0)

    def parse(self) -> str:
        name = self._take(r"[a-zA-Z]+").lower()
        if name == "array":
            self._take("<")
            inner = self.parse()
            self._take(">")
            return f"{inner}[]"
        if name == "struct":
            self._take("<")
            fields = []
            while True:
                field = self._take(r"[A-Za-z_][A-Za-z0-9_]*")
                self._take(":")
                fields.append(f'"{field}" {self.parse()}')
                if self.text.startswith(">", self.pos):
                    self.pos += 1
                    return f"STRUCT({', '.join(fields)})"
                self._take(",")
        if name == "decimal":
            return "DECIMAL" + self._take(r"\(\d+,\d+\)")
        if name in ("varchar", "char") and self.text.startswith("(", self.pos):
            self._take(r"\(\d+\)")
        if name not in _SIMPLE_TYPES:
            raise ValueError(f"Glue type {self.text!r}: {name!r} is not supported by the local runner")
        return _SIMPLE_TYPES[name]


# --- Athena -> DuckDB ---------------------------------------------------------------------------------------------

_JODA_TOKENS = [
    ("yyyy", "%Y"),
    ("YYYY", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("dd", "%d"),
    ("d", "%-d"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("SSS", "%g"),
    ("a", "%p"),
    ("EEEE", "%A"),
    ("EEE", "%a"),
    ("ZZ", "%z"),
    ("Z", "%z"),
    ("z", "%Z"),
]


def joda_to_strftime(pattern: str) -> str:
    """Translate a Joda-Time pattern (Athena's format_datetime) to a strftime pattern (DuckDB)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise LocalQueryError(f"format_datetime pattern {pattern!r}: unterminated quote")
            out.append(pattern[i + 1 : end].replace("%", "%%") or "'")
            i = end + 1
            continue
        for token, replacement in _JODA_TOKENS:
            if pattern.startswith(token, i):
                out.append(replacement)
                i += len(token)
                break
        else:
            if char.isalpha():
                raise LocalQueryError(f"format_datetime pattern {pattern!r}: letter {char!r} is not supported locally")
            out.append("%%" if char == "%" else char)
            i += 1
    return "".join(out)


def _fix_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DateDiff):
        unit = node.args.get("unit")
        unit_name = (unit.name if unit is not None else "day").lower()
        return exp.Anonymous(this="date_sub", expressions=[exp.Literal.string(unit_name), node.expression, node.this])
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "format_datetime" and len(node.expressions) == 2:
            pattern = node.expressions[1]
            if not isinstance(pattern, exp.Literal) or not pattern.is_string:
                raise LocalQueryError("format_datetime: the pattern must be a string literal to run locally")
            return exp.Anonymous(
                this="strftime",
                expressions=[node.expressions[0], exp.Literal.string(joda_to_strftime(pattern.this))],
            )
        if name in ("any_match", "all_match", "none_match") and len(node.expressions) == 2:
            array, predicate = node.expressions
            mapped = exp.Anonymous(this="list_transform", expressions=[array, predicate])
            if name == "any_match":
                return exp.Anonymous(this="list_bool_or", expressions=[mapped])
            if name == "all_match":
                return exp.Anonymous(this="list_bool_and", expressions=[mapped])
            return exp.Not(this=exp.Anonymous(this="list_bool_or", expressions=[mapped]))
    if isinstance(node, exp.Unnest):
        alias = node.args.get("alias")
        columns = alias.columns if alias is not None else []
        if len(node.expressions) == 1 and len(columns) > 1:
            if node.args.get("offset"):
                raise LocalQueryError("UNNEST … WITH ORDINALITY of an array of rows is not supported locally")
            inner = sqlglot.parse_one("SELECT __row.* FROM (SELECT UNNEST(__array) AS __row) AS __rows", read="duckdb")
            for column in inner.find_all(exp.Column):
                if column.name == "__array":
                    column.replace(node.expressions[0].copy())
            return exp.Lateral(this=exp.Subquery(this=inner), alias=alias.copy())
    return node


def to_duckdb(tree: exp.Expression) -> str:
    """Athena syntax tree -> DuckDB SQL, with the dialect gaps fixed."""
    fixed = tree.copy().transform(_fix_node)
    return fixed.sql(dialect="duckdb")


def transpile(athena_sql: str) -> str:
    try:
        tree = sqlglot.parse_one(athena_sql, read=queries.DIALECT)
    except sqlglot.errors.ParseError as error:
        raise LocalQueryError(f"not valid Athena SQL: {error}") from None
    return to_duckdb(tree)


# --- the runner -------------------------------------------------------------------------------------------------


class LocalAthena:
    """DuckDB over the exported documents of one bucket/prefix, with the views of athena-queries.sql.

    Objects come from S3 (``bucket``, through ``aws``; read on the first query, again after :meth:`refresh`) or from
    :meth:`load_objects` (tests). ``queries`` defaults to the repository's athena-queries.sql.
    """

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str | None = None,
        *,
        query_file: queries.QueryFile | None = None,
        aws: AwsClients | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if prefix is not None else config.prefixes()["compras"]
        self.query_file = query_file or queries.load()
        self._aws = aws
        self._s3: Any = None
        self._dir = Path(tempfile.mkdtemp(prefix="local-athena-"))
        self._con = duckdb.connect()
        self._con.execute("SET integer_division = true")
        self._con.execute("SET TimeZone = 'UTC'")
        self._loaded = False
        self.skipped_keys: list[str] = []
        self.object_count = 0
        self.snapshot: dict[str, Any] | None = None

    # lifecycle
    def close(self) -> None:
        self._con.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalAthena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # loading
    def refresh(self) -> None:
        """Re-read the objects from S3 (the next query sees what the pipeline wrote since)."""
        if self.bucket is None:
            raise LocalQueryError("refresh(): this runner has no bucket; use load_objects()")
        self.load_objects(self._download(), compact=False)
        self._load_snapshot()

    def _client(self) -> Any:
        if self._s3 is None:
            if self._aws is None:
                raise LocalQueryError("this runner reads a bucket: give it the clients of its stand-in (aws=...)")
            self._s3 = self._aws.client("s3")
        return self._s3

    def _download(self) -> Iterator[tuple[str, bytes]]:
        s3 = self._client()
        paginator = s3.get_paginator("list_objects_v2")
        object_keys = [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix)
            for item in page.get("Contents", [])
        ]

        yield from self._fetch_all(object_keys)

    def _fetch_all(self, object_keys: list[str]) -> Iterator[tuple[str, bytes]]:
        s3 = self._client()

        def fetch(key: str) -> tuple[str, bytes]:
            return key, s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        with ThreadPoolExecutor(max_workers=16) as pool:
            yield from pool.map(fetch, object_keys)

    def _load_snapshot(self) -> None:
        """Fill compras_iceberg with the files of the bucket's last committed snapshot (if any)."""
        s3 = self._client()
        pointer = iceberg_prefix() + SNAPSHOT_POINTER
        try:
            body = s3.get_object(Bucket=self.bucket, Key=pointer)["Body"].read()
        except s3.exceptions.NoSuchKey:
            self.snapshot = None
            return
        self.snapshot = json.loads(body)
        data_prefix = self.snapshot["data_prefix"]
        directory = self._dir / "iceberg"
        paths = []
        for key, content in self._fetch_all([f["key"] for f in self.snapshot["files"]]):
            path = directory / key[len(data_prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            paths.append(str(path))
        self.load_parquet(paths)

    def load_parquet(self, paths: list[str]) -> None:
        """Replace the rows of compras_iceberg by those of Parquet files in the hive layout tenant_id=…/dia=…."""
        self._con.execute(f"DELETE FROM {ICEBERG_TABLE}")  # noqa: S608  # nosec B608 - name from config
        if not paths:
            return
        selected = ", ".join(f'"{name}"' for name, _ in iceberg_columns())
        try:
            self._con.execute(
                f"INSERT INTO {ICEBERG_TABLE} SELECT {selected} "  # noqa: S608  # nosec B608 - config names
                "FROM read_parquet(?, hive_partitioning = true, hive_types = {'tenant_id': VARCHAR, 'dia': VARCHAR})",
                [paths],
            )
        except duckdb.Error as error:
            raise LocalQueryError(f"reading the compacted table's Parquet files failed: {error}") from None

    def write_parquet(self, directory: Path) -> list[Path]:
        """Write compras_iceberg as Parquet (ZSTD) partitioned by tenant_id/dia under `directory`; the files."""
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        partition = ", ".join(compaction.PARTITION_COLUMNS)
        self._con.execute(
            f"COPY (SELECT * FROM {ICEBERG_TABLE} ORDER BY {partition}, compra_id) TO '{directory}' "  # noqa: S608  # nosec B608
            f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({partition}), OVERWRITE_OR_IGNORE true)"
        )
        return sorted(p for p in directory.rglob("*.parquet"))

    def execute_maintenance(self, athena_sql: str, name: str) -> int:
        """Run one maintenance statement (MERGE INTO / DELETE) transpiled; the rows it changed."""
        self._ensure_loaded()
        cursor = self._execute(name, transpile(athena_sql))
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def iceberg_rows(self) -> int:
        self._ensure_loaded()
        row = self._con.execute(f"SELECT count(*) FROM {ICEBERG_TABLE}").fetchone()  # noqa: S608  # nosec B608
        return int(row[0]) if row else 0

    def load_objects(self, objects: Iterable[tuple[str, bytes]], *, compact: bool = True) -> None:
        """(Re)build the table from (key, body) pairs; keys outside the layout are skipped.

        ``compact``: also fill compras_iceberg with one full MERGE of these documents (the same SQL a first
        compactarCompras run executes), so the queries read their compacted state.
        """
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir.mkdir(parents=True)
        partitions: list[tuple[str, str, str, str, str]] = []
        self.skipped_keys = []
        for number, (key, body) in enumerate(objects):
            try:
                parsed = keys.parse_object_key(key, self.prefix)
            except keys.InvalidObjectKeyError:
                self.skipped_keys.append(key)
                continue
            path = self._dir / f"{number:08d}.json"
            path.write_bytes(body)
            partitions.append((str(path), *parsed.partition))
        self.object_count = len(partitions)
        self._build_table(partitions)
        self._loaded = True
        if compact:
            self.execute_maintenance(self.full_merge_sql(), "merge")

    @staticmethod
    def full_merge_sql() -> str:
        """The MERGE of a first compactarCompras run (every change, every partition)."""
        plan = compaction.RunPlan(
            started_at=dt.datetime.now(dt.UTC),
            mode="full",
            since=None,
            from_day=None,
            optimize=False,
            vacuum=False,
            purge_tombstones_before=None,
        )
        names = compaction.TableNames(ICEBERG_TABLE, "s3://local/iceberg/")
        return compaction.merge_sql(names, plan)

    def _build_table(self, partitions: list[tuple[str, str, str, str, str]]) -> None:
        catalog = config.catalog()
        columns = [(c["Name"], duckdb_type(c["Type"])) for c in catalog["columns"]]
        partition_columns = [(c["Name"], duckdb_type(c["Type"])) for c in catalog["partitionKeys"]]
        con = self._con
        for view in self.query_file.views():
            con.execute(f'DROP VIEW IF EXISTS "{view.view}"')
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(f"DROP TABLE IF EXISTS {ICEBERG_TABLE}")
        con.execute("DROP TABLE IF EXISTS __partitions")
        declared = ", ".join(f'"{name}" {kind}' for name, kind in [*columns, *partition_columns])
        con.execute(f"CREATE TABLE {TABLE} ({declared})")
        iceberg_declared = ", ".join(f'"{name}" {kind}' for name, kind in iceberg_columns())
        con.execute(f"CREATE TABLE {ICEBERG_TABLE} ({iceberg_declared})")
        con.execute(
            "CREATE TEMP TABLE __partitions (filename VARCHAR, "
            + ", ".join(f'"{name}" {kind}' for name, kind in partition_columns)
            + ")"
        )
        if partitions:
            con.executemany("INSERT INTO __partitions VALUES (?, ?, ?, ?, ?)", partitions)
            struct = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns) + "}"
            selected = ", ".join(f'j."{name}"' for name, _ in columns)
            partition_selected = ", ".join(f'p."{name}"' for name, _ in partition_columns)
            try:
                # Names and types come from config/pipeline.yml; the file list is bound as a parameter.
                insert = (
                    f"INSERT INTO {TABLE} SELECT {selected}, {partition_selected} "  # noqa: S608  # nosec B608
                    f"FROM read_json(?, columns = {struct}, format = 'newline_delimited', filename = true) AS j "
                    "JOIN __partitions AS p ON p.filename = j.filename"
                )
                con.execute(
                    insert,
                    [[p[0] for p in partitions]],
                )
            except duckdb.Error as error:
                raise LocalQueryError(f"reading the exported documents failed: {error}") from None
        for view in self.query_file.views():
            self._execute(view.name, transpile(view.sql))

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            if self.bucket is None:
                self.load_objects([])
            else:
                self.refresh()

    # queries
    def _execute(self, name: str, sql: str) -> duckdb.DuckDBPyConnection:
        try:
            return self._con.execute(sql)
        except duckdb.Error as error:
            raise LocalQueryError(f"query {name!r} failed on DuckDB: {error}\n--- transpiled SQL ---\n{sql}") from None

    def run(
        self,
        name: str,
        tenant_id: str | None = None,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
        read_from: str | None = None,
    ) -> QueryResult:
        """Run one named query of the file with bound parameters (``read_from``: see QueryFile.bind)."""
        self._ensure_loaded()
        params = queries.QueryParams.of(tenant_id, date_from, date_to)
        tree = self.query_file.bind_expression(name, params, read_from=read_from)
        cursor = self._execute(name, to_duckdb(tree))
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(name, columns, [tuple(row) for row in cursor.fetchall()])

    def run_sql(self, athena_sql: str, name: str = "sql") -> QueryResult:
        """Run any Athena SQL statement against the local table and views."""
        self._ensure_loaded()
        cursor = self._execute(name, transpile(athena_sql))
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(name, columns, [tuple(row) for row in cursor.fetchall()])

    def run_all(self, **params: Any) -> list[QueryResult]:
        """Every row-returning query of the file, in file order."""
        return [self.run(q.name, **params) for q in self.query_file.selects()]
