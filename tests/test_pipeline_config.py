"""pipeline_config/: the Python view of config/pipeline.yml (pure, no AWS)."""

from __future__ import annotations

import pytest

import pipeline_config as config


def test_names_resolve_stage_account_and_region():
    names = config.stack_names("qa", account_id="111122223333", region="eu-west-1")
    assert names.bucket == "compras-qa-111122223333-eu-west-1"
    assert names.table == "compras-qa-purchases"
    assert names.glue_database == "qa-compras-datacatalog"
    assert "${" not in "".join(str(v) for v in vars(names).values())


def test_unknown_placeholder_is_rejected_with_its_name():
    with pytest.raises(ValueError, match=r"\$\{aws:accountId\}"):
        config.resolve("x-${aws:accountId}", stage="s", account_id="1", region="r")


def test_serde_paths_list_the_columns_in_order():
    cat = config.catalog()
    assert cat["serdeParameters"]["paths"].split(",") == [c["Name"] for c in cat["columns"]]


def test_partition_keys_are_not_columns():
    cat = config.catalog()
    columns = {c["Name"] for c in cat["columns"]}
    assert not columns & {k["Name"] for k in cat["partitionKeys"]}


def test_lambda_environment_is_all_strings_and_carries_the_tuning_values():
    env = config.lambda_environment(config.stack_names("dev"))
    assert all(isinstance(v, str) and v for v in env.values())
    ingestion = config.function_settings("ingestion")
    assert env["WRITE_CONCURRENCY"] == str(ingestion["writeConcurrency"])
    assert env["MAX_WRITE_ATTEMPTS"] == str(ingestion["maxWriteAttempts"])
    assert float(env["BACKOFF_BASE_SECONDS"]) == ingestion["backoffBaseSeconds"]
    assert float(env["BACKOFF_CAP_SECONDS"]) == ingestion["backoffCapSeconds"]
    assert env["PUT_CONCURRENCY"] == str(config.function_settings("stream")["putConcurrency"])
    assert env["BUCKET_NAME"] == "compras-dev-123456789012-us-east-1"


def test_ingest_visibility_timeout_covers_six_function_timeouts():
    assert config.queue_settings()["ingestVisibilityTimeout"] >= 6 * config.function_settings("ingestion")["timeout"]
