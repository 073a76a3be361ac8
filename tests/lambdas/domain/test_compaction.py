"""lambdas.domain.compaction: settings, state, the run plan (windows, watermarks, cadences) and the SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlglot

import pipeline_config as config
from lambdas.domain import compaction as c

SETTINGS = c.CompactionSettings.from_config(
    {
        "safetyLagMinutes": 15,
        "recentDays": 3,
        "fullMergeEveryHours": 24,
        "optimizeEveryHours": 24,
        "vacuumEveryHours": 168,
        "tombstoneRetentionDays": 30,
    }
)
NAMES = c.TableNames("compras_iceberg", "s3://bucket/iceberg/compras_iceberg/")
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
COLUMNS = config.catalog()["columns"]


def test_settings_come_from_config_and_are_checked():
    settings = c.CompactionSettings.from_config(config.function_settings("compaction"))
    assert settings.safety_lag >= timedelta(seconds=config.function_settings("stream")["timeout"])
    with pytest.raises(c.CompactionConfigError, match="recentDays"):
        c.CompactionSettings.from_config({**config.function_settings("compaction"), "recentDays": 0})
    with pytest.raises(c.CompactionConfigError, match="tombstoneRetentionDays must exceed"):
        c.CompactionSettings.from_config({**config.function_settings("compaction"), "tombstoneRetentionDays": 1})
    with pytest.raises(c.CompactionConfigError, match="COMPACTION_SAFETY_LAG_MINUTES is not set"):
        c.CompactionSettings.from_env({})


def test_first_run_is_full_over_all_history_then_recent_runs_overlap_by_the_safety_lag():
    first = c.plan_run(c.CompactionState(), T0, SETTINGS)
    assert (first.mode, first.since, first.from_day) == ("full", None, None)
    assert first.optimize and first.vacuum
    state = first.committed(c.CompactionState())
    assert state.recent_watermark == state.full_watermark == T0

    second = c.plan_run(state, T0 + timedelta(hours=1), SETTINGS)
    assert second.mode == "recent"
    assert second.since == T0 - timedelta(minutes=15)  # the previous start minus the lag: late arrivals re-read
    assert second.from_day == "2026-03-07"
    state = second.committed(state)
    assert state.recent_watermark == T0 + timedelta(hours=1) and state.full_watermark == T0

    third = c.plan_run(state, T0 + timedelta(hours=24), SETTINGS)
    assert third.mode == "full" and third.from_day is None
    assert third.since == T0 - timedelta(minutes=15)  # the full window starts at the last *full* run


def test_state_never_moves_back_and_round_trips():
    newer = c.CompactionState(recent_watermark=T0 + timedelta(hours=2), full_watermark=T0, merges=3)
    older = c.CompactionState(recent_watermark=T0, full_watermark=T0 - timedelta(days=1), merges=1)
    assert older.merged_with(newer) == newer.merged_with(older) == newer
    # A slow run that started earlier commits last: the watermark stays where the faster run put it.
    slow = c.plan_run(older, T0 + timedelta(hours=1), SETTINGS)
    assert slow.committed(newer).recent_watermark == T0 + timedelta(hours=2)
    assert c.CompactionState.from_json(newer.to_json()) == newer
    assert c.CompactionState.from_json(None) == c.CompactionState()
    with pytest.raises(ValueError, match="unsupported version"):
        c.CompactionState.from_json('{"version": 9}')


def test_cadences_of_the_slow_steps():
    state = c.CompactionState(
        recent_watermark=T0,
        full_watermark=T0,
        last_optimize_at=T0,
        last_vacuum_at=T0,
        last_purge_at=T0,
    )
    plan = c.plan_run(state, T0 + timedelta(hours=2), SETTINGS)
    assert [s.step for s in c.statements(plan, NAMES, COLUMNS)] == ["create", "merge"]
    plan = c.plan_run(state, T0 + timedelta(days=8), SETTINGS)
    assert [s.step for s in c.statements(plan, NAMES, COLUMNS)] == [
        "create",
        "merge",
        "purge",
        "optimize",
        "vacuum",
    ]
    assert plan.purge_tombstones_before == T0 + timedelta(days=8) - timedelta(days=30)


def test_statements_are_valid_athena_sql_with_the_views_ordering():
    plan = c.plan_run(c.CompactionState(full_watermark=T0, recent_watermark=T0), T0 + timedelta(hours=1), SETTINGS)
    merge = c.merge_sql(NAMES, plan)
    tree = sqlglot.parse_one(merge, read="athena")
    assert tree.key == "merge"
    assert "length(c.metadata.sequence_number) DESC, c.metadata.sequence_number DESC" in merge
    assert "c.metadata.processed_at > '2026-03-10T11:45:00.000000+00:00'" in merge
    assert "concat(c.year, '-', c.month, '-', c.day) >= '2026-03-07'" in merge
    ddl = c.create_table_sql(NAMES, COLUMNS)
    assert "'table_type' = 'ICEBERG'" in ddl and "PARTITIONED BY (`tenant_id`, `dia`)" in ddl
    assert "LOCATION 's3://bucket/iceberg/compras_iceberg/'" in ddl
    for sql in (c.optimize_sql(NAMES), c.vacuum_sql(NAMES), c.purge_tombstones_sql(NAMES, T0)):
        assert "compras_iceberg" in sql
    with pytest.raises(c.CompactionConfigError):
        c.TableNames("x; DROP", "s3://b/p/")
    with pytest.raises(c.CompactionConfigError):
        c.TableNames("t", "s3://b/p'/")


class _Store:
    def __init__(self) -> None:
        self.state = c.CompactionState()
        self.saves: list[c.CompactionState] = []

    def load(self) -> c.CompactionState:
        return self.state

    def save(self, state: c.CompactionState) -> None:
        self.state = state
        self.saves.append(state)


class _Engine:
    def __init__(self, fail_at: str | None = None) -> None:
        self.fail_at = fail_at
        self.steps: list[str] = []

    def execute(self, statement: c.Statement) -> c.StepResult:
        self.steps.append(statement.step)
        if statement.step == self.fail_at:
            raise RuntimeError(f"{statement.step} failed")
        return c.StepResult(statement.step)


def _run(engine, store, now=T0):
    return c.run_maintenance(engine, store, settings=SETTINGS, names=NAMES, catalog_columns=COLUMNS, now=now)


def test_the_watermark_advances_only_after_the_merge_commits():
    store = _Store()
    with pytest.raises(RuntimeError, match="merge failed"):
        _run(_Engine(fail_at="merge"), store)
    assert store.state == c.CompactionState() and store.saves == []
    # OPTIMIZE fails after the MERGE committed: the merge is recorded, the optimize is not (retried next run).
    with pytest.raises(RuntimeError, match="optimize failed"):
        _run(_Engine(fail_at="optimize"), store)
    assert store.state.full_watermark == T0 and store.state.last_optimize_at is None
    engine = _Engine()
    result = _run(engine, store, T0 + timedelta(minutes=5))
    assert result.plan.mode == "recent" and "optimize" in engine.steps
    assert store.state.last_optimize_at == T0 + timedelta(minutes=5)
