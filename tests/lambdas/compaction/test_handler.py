"""compactarCompras' handler on the local stack: the statements go to Athena in the stage's workgroup (moto
executes nothing and reports SUCCEEDED), the state object records the committed merge, bad settings fail fast."""

from __future__ import annotations

import pytest

from lambdas.compaction import handler as compaction_handler
from lambdas.compaction.service import S3StateStore
from lambdas.shared.settings import CompactionFunctionSettings, MissingSettingError
from local.lambda_context import LocalLambdaContext
from local.stack import COMPACTION

pytestmark = pytest.mark.integration


def test_a_run_sends_the_ddl_and_merge_to_the_workgroup_and_commits_the_state(stack):
    function = stack.functions[COMPACTION]
    settings = CompactionFunctionSettings.from_env(function.environment)
    run = compaction_handler.build_handler(settings, stack.aws)
    summary = run({}, LocalLambdaContext.of(function))
    assert summary["mode"] == "full" and [s["step"] for s in summary["steps"]][:2] == ["create", "merge"]
    athena = stack.aws.client("athena")
    sent = [
        athena.get_query_execution(QueryExecutionId=s["query_execution_id"])["QueryExecution"] for s in summary["steps"]
    ]
    assert {q["WorkGroup"] for q in sent} == {stack.names.athena_workgroup}
    assert sent[0]["Query"].startswith(f"CREATE TABLE IF NOT EXISTS `{settings.iceberg_table}`")
    assert sent[1]["Query"].startswith(f"MERGE INTO {settings.iceberg_table} AS t")
    state = S3StateStore(stack.aws, settings.bucket_name, settings.compaction_prefix).load()
    assert state.merges == 1 and state.last_merge_at is not None
    again = run({"full": True}, LocalLambdaContext.of(function))
    assert (
        again["mode"] == "full"
        and "processed_at >"
        in athena.get_query_execution(QueryExecutionId=again["steps"][1]["query_execution_id"])["QueryExecution"][
            "Query"
        ]
    )


def test_missing_or_bad_settings_fail_fast(stack):
    environment = dict(stack.functions[COMPACTION].environment)
    del environment["ICEBERG_TABLE"]
    with pytest.raises(MissingSettingError, match="ICEBERG_TABLE"):
        CompactionFunctionSettings.from_env(environment)
    environment = {**stack.functions[COMPACTION].environment, "COMPACTION_RECENT_DAYS": "x"}
    with pytest.raises(MissingSettingError, match="COMPACTION_RECENT_DAYS"):
        CompactionFunctionSettings.from_env(environment)


def test_sample_events_are_what_the_handler_reads():
    import json
    from pathlib import Path

    events = Path(compaction_handler.__file__).parent / "events"
    scheduled = json.loads((events / "schedule.json").read_text(encoding="utf-8"))
    assert scheduled["detail-type"] == "Scheduled Event" and "full" not in scheduled
    assert json.loads((events / "full.json").read_text(encoding="utf-8")) == {"full": True}
