"""tools/invoke_local.py (`make invoke-local`): the filled event names the deployed stage's real bucket and an
uploaded key, and the handler accepts it; the command runs `serverless invoke local` with the project's
virtualenv and the function's timeout; missing pieces are clear errors.

moto stands in for the deployed stage: the `stack` fixture is the packaged template deployed into moto's
CloudFormation as stack `compras-test` (local/stack.py), with its DataBucketName output; the tool is given the
stand-in's clients (``main(..., aws=stack.aws)``). The Serverless CLI itself is not run here (it ignores
AWS_ENDPOINT_URL, so it cannot reach moto): the event it would pass is given to the real function instead."""

from __future__ import annotations

import json

import pytest

from local.pipeline import build_function
from local.stack import INGESTION
from tests.lambdas.ingestion.test_handler import GOOD, context, drain_test_event, report_of, table_items
from tools import invoke_local

pytestmark = pytest.mark.integration


def test_ingestion_event_names_the_newest_upload_and_the_handler_loads_it(stack, tmp_path, capsys):
    drain_test_event(stack)
    s3 = stack.aws.client("s3")
    key = "uploads/tienda norte/enero ñ.csv"
    s3.put_object(Bucket=stack.names.bucket, Key=key, Body=GOOD.encode())

    assert invoke_local.main(["ingestarTickets", "--stage", "test", "--dry-run"], out_dir=tmp_path, aws=stack.aws) == 0
    event = json.loads((tmp_path / "ingestarTickets.json").read_text(encoding="utf-8"))
    (notification,) = json.loads(event["Records"][0]["body"])["Records"]
    assert notification["s3"]["bucket"]["name"] == stack.names.bucket
    assert notification["s3"]["object"]["key"] == "uploads%2Ftienda+norte%2Fenero+%C3%B1.csv"
    assert notification["s3"]["object"]["size"] == len(GOOD.encode())
    assert event["Records"][0]["eventSourceARN"].endswith(f":{stack.names.ingest_queue}")

    assert build_function(stack, INGESTION)(event, context()) == {"batchItemFailures": []}
    assert report_of(stack, key)["status"] == "loaded_with_rejections"
    assert sorted(table_items(stack)) == [("S1", "B1"), ("S2", "B2")]
    printed = capsys.readouterr().err
    assert f"(bucket {stack.names.bucket})" in printed and "invoke local --function ingestarTickets" in printed

    s3.put_object(Bucket=stack.names.bucket, Key="uploads/other.csv", Body=GOOD.encode())
    args = ["ingestarTickets", "--stage", "test", "--key", key, "--dry-run"]
    assert invoke_local.main(args, out_dir=tmp_path, aws=stack.aws) == 0  # KEY= picks the object, whatever is newer
    event = json.loads((tmp_path / "ingestarTickets.json").read_text(encoding="utf-8"))
    assert json.loads(event["Records"][0]["body"])["Records"][0]["s3"]["object"]["key"].endswith("enero+%C3%B1.csv")


def test_the_command_uses_the_venv_and_the_functions_timeout(tmp_path):
    argv, env = invoke_local.command("generarReporteCompras", "dev", tmp_path / "e.json")
    assert argv[1:9] == [
        "invoke",
        "local",
        "--function",
        "generarReporteCompras",
        "--stage",
        "dev",
        "--path",
        str(tmp_path / "e.json"),
    ]
    assert argv[0].endswith("node_modules/.bin/serverless")
    assert json.loads(argv[argv.index("--context") + 1]) == {
        "name": "compras-dev-generarReporteCompras",
        "timeout": 300,
    }
    assert env["VIRTUAL_ENV"] == str(invoke_local.ROOT / ".venv")


def test_report_event_takes_tenant_and_range(stack, tmp_path):
    args = [
        "generarReporteCompras",
        "--stage",
        "test",
        "--tenant",
        "madrid-centro",
        "--from",
        "2024-05-02",
        "--dry-run",
    ]
    assert invoke_local.main(args, out_dir=tmp_path, aws=stack.aws) == 0
    event = json.loads((tmp_path / "generarReporteCompras.json").read_text(encoding="utf-8"))
    assert event == {"tenant_id": "madrid-centro", "from": "2024-05-02", "to": "2024-05-31"}


def test_missing_stage_upload_or_sample_are_clear_errors(stack, tmp_path, capsys):
    assert invoke_local.main(["ingestarTickets", "--stage", "qa", "--dry-run"], out_dir=tmp_path, aws=stack.aws) == 2
    assert "stage 'qa' is not deployed" in capsys.readouterr().err
    assert invoke_local.main(["ingestarTickets", "--stage", "test", "--dry-run"], out_dir=tmp_path, aws=stack.aws) == 2
    assert "no uploads/*.csv in s3://" in capsys.readouterr().err
    args = ["ingestarTickets", "--stage", "test", "--key", "uploads/nope.csv", "--dry-run"]
    assert invoke_local.main(args, out_dir=tmp_path, aws=stack.aws) == 2
    assert "uploads/nope.csv cannot be read" in capsys.readouterr().err
    args = ["actualizarComprasStream", "--stage", "test", "--event", "nope.json", "--dry-run"]
    assert invoke_local.main(args, out_dir=tmp_path, aws=stack.aws) == 2
    assert (
        "no sample event nope.json for actualizarComprasStream: one of batch.json, insert.json"
        in capsys.readouterr().err
    )
