"""`make invoke-local FUNCTION=… STAGE=…`: run one function's handler on this machine against a DEPLOYED stage.

`serverless invoke local` alone needs things it does not say; this fills them in:

* an event that names the stage's real resources: the ingestion's sample SQS event gets the stage's bucket
  (stack output DataBucketName) and an uploaded key (KEY=…, default: the newest uploads/*.csv), URL-encoded as S3
  sends it; the report's event takes TENANT / FROM / TO; the stream's samples are used as they are (EVENT=…
  picks another sample). The filled event is written to .build/invoke-local/<function>.json;
* the project's virtualenv (.venv: Powertools, sqlglot, boto3 of requirements.txt): `invoke local` runs
  `python3` from $VIRTUAL_ENV/bin when VIRTUAL_ENV is set, so it is set to .venv;
* a context with the function's deployed name and timeout (Serverless' default context has 6 s, too short
  for the report's Athena queries).

Needs: `make setup` (.venv, node_modules), AWS credentials for the stage's account and region (the same as
for `serverless deploy`), the stage deployed (`make deploy STAGE=…`: `invoke local` reads BUCKET_NAME from
the stack, the functions use its table, bucket, Glue catalog and Athena workgroup), and for the ingestion a
CSV uploaded under uploads/. The handler then really runs against the stage: the ingestion loads the file
into the table, the stream export writes the sample purchase's document (tenant `tienda-centro`) under
compras/, the report runs four Athena queries (billed as usual).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import ClientError

import pipeline_config as config
from lambdas.adapters.clients import AwsClients

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {  # function name -> (config block, directory of its sample events, default sample)
    "ingestarTickets": ("ingestion", "lambdas/ingestion/events", "sqs_s3_put.json"),
    "actualizarComprasStream": ("stream", "lambdas/stream/events", "insert.json"),
    "generarReporteCompras": ("report", "lambdas/report/events", "invoke.json"),
}
OUT_DIR = ROOT / ".build" / "invoke-local"


class InvokeLocalError(RuntimeError):
    """What is missing to invoke the function, and how to get it."""


@dataclass(frozen=True)
class Stage:
    stage: str
    region: str
    account_id: str
    stack_name: str
    bucket: str


def stage_region(region: str | None = None) -> str:
    """--region, else AWS_REGION / AWS_DEFAULT_REGION, else the region of config/pipeline.yml."""
    environment = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return region or environment or config.raw_config()["region"]


def find_stage(aws: AwsClients, stage: str) -> Stage:
    """The deployed stage: its CloudFormation stack and the bucket it created (output DataBucketName)."""
    cfg = config.raw_config()
    region = aws.region or stage_region()
    stack_name = f"{cfg['service']}-{stage}"
    try:
        (stack,) = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise InvokeLocalError(
            f"stage {stage!r} is not deployed in {region} (stack {stack_name}: {exc.response['Error']['Message']}): "
            f"deploy it first with `make deploy STAGE={stage}`, or pass the region with AWS_REGION"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "DataBucketName" not in outputs:
        raise InvokeLocalError(f"stack {stack_name} has no DataBucketName output: is it this project's stack?")
    account_id = aws.client("sts").get_caller_identity()["Account"]
    return Stage(
        stage=stage, region=region, account_id=account_id, stack_name=stack_name, bucket=outputs["DataBucketName"]
    )


def newest_upload(aws: AwsClients, target: Stage) -> str:
    """The most recently modified uploads/*.csv of the stage's bucket."""
    prefixes = config.prefixes()
    newest: dict[str, Any] | None = None
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=prefixes["uploads"]):
        for item in page.get("Contents", []):
            if item["Key"].endswith(prefixes["uploadsSuffix"]) and (
                newest is None or item["LastModified"] > newest["LastModified"]
            ):
                newest = item
    if newest is None:
        raise InvokeLocalError(
            f"no {prefixes['uploads']}*{prefixes['uploadsSuffix']} in s3://{target.bucket}: upload one first "
            f"(aws s3 cp tickets.csv s3://{target.bucket}/{prefixes['uploads']}tickets.csv) or pass KEY=…"
        )
    return newest["Key"]


def sample(function: str, name: str | None = None) -> dict[str, Any]:
    _, directory, default = FUNCTIONS[function]
    path = ROOT / directory / (name or default)
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in (ROOT / directory).glob("*.json")))
        raise InvokeLocalError(f"no sample event {path.name} for {function}: one of {available}")
    return json.loads(path.read_text(encoding="utf-8"))


def ingestion_event(aws: AwsClients, target: Stage, key: str, template: dict[str, Any]) -> dict[str, Any]:
    """The sample SQS event with one S3 notification of s3://bucket/key (as S3 and SQS would send it)."""
    try:
        head = aws.client("s3").head_object(Bucket=target.bucket, Key=key)
    except ClientError as exc:
        raise InvokeLocalError(
            f"s3://{target.bucket}/{key} cannot be read: {exc.response['Error']['Message']}"
        ) from exc
    event = copy.deepcopy(template)
    (record,) = event["Records"]
    body = json.loads(record["body"])
    (notification,) = body["Records"]
    notification["awsRegion"] = target.region
    notification["s3"]["bucket"]["name"] = target.bucket
    notification["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{target.bucket}"
    notification["s3"]["object"].update(
        key=quote_plus(key),  # S3 URL-encodes keys, slashes included ("+" for spaces)
        size=int(head["ContentLength"]),
        eTag=head["ETag"].strip('"'),
    )
    record["body"] = json.dumps(body)
    names = config.stack_names(target.stage, account_id=target.account_id, region=target.region)
    record["eventSourceARN"] = f"arn:aws:sqs:{target.region}:{target.account_id}:{names.ingest_queue}"
    record["awsRegion"] = target.region
    return event


def build_event(aws: AwsClients, function: str, target: Stage, options: argparse.Namespace) -> dict[str, Any]:
    template = sample(function, options.event)
    if function == "ingestarTickets" and "Records" in template and "body" in template["Records"][0]:
        body = json.loads(template["Records"][0]["body"])
        if "Records" in body:  # an S3 notification (not the s3:TestEvent sample): name a real object
            return ingestion_event(aws, target, options.key or newest_upload(aws, target), template)
    if function == "generarReporteCompras" and "tenant_id" in template:
        overrides = {"tenant_id": options.tenant, "from": options.date_from, "to": options.date_to}
        return {**template, **{k: v for k, v in overrides.items() if v}}
    return template


def command(function: str, stage: str, event_path: Path) -> tuple[list[str], dict[str, str]]:
    """The `serverless invoke local` command line and its environment."""
    block = FUNCTIONS[function][0]
    settings = config.function_settings(block)
    context = {"name": f"{config.raw_config()['service']}-{stage}-{function}", "timeout": settings["timeout"]}
    argv = [
        str(ROOT / "node_modules" / ".bin" / "serverless"),
        "invoke",
        "local",
        "--function",
        function,
        "--stage",
        stage,
        "--path",
        str(event_path),
        "--context",
        json.dumps(context),
    ]
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(ROOT / ".venv"),  # invoke local runs $VIRTUAL_ENV/bin/python3
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    return argv, env


def main(argv: list[str] | None = None, out_dir: Path = OUT_DIR, aws: AwsClients | None = None) -> int:
    """``aws``: the clients that reach the stage (default: boto3's, in the stage's region)."""
    parser = argparse.ArgumentParser(prog="make invoke-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", choices=sorted(FUNCTIONS))
    parser.add_argument("--stage", required=True)
    parser.add_argument("--region", help="default: AWS_REGION, else the region of config/pipeline.yml")
    parser.add_argument("--event", help="another sample of the function's events/ directory (file name)")
    parser.add_argument("--key", help="ingestion: the uploaded object (default: the newest uploads/*.csv)")
    parser.add_argument("--tenant", help="report: tenant_id")
    parser.add_argument("--from", dest="date_from", help="report: first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", help="report: last day, YYYY-MM-DD")
    parser.add_argument("--dry-run", action="store_true", help="write the event and print the command only")
    options = parser.parse_args(argv)
    try:
        for needed, fix in ((ROOT / ".venv" / "bin" / "python3", "make setup"), (ROOT / "node_modules", "make setup")):
            if not needed.exists():
                raise InvokeLocalError(f"{needed.relative_to(ROOT)} is missing: run `{fix}` first")
        aws = aws or AwsClients(region=stage_region(options.region))
        target = find_stage(aws, options.stage)
        event = build_event(aws, options.function, target, options)
    except InvokeLocalError as error:
        print(f"invoke-local: {error}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    event_path = out_dir / f"{options.function}.json"
    event_path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    args, env = command(options.function, options.stage, event_path)
    print(f"event: {event_path} (bucket {target.bucket})", file=sys.stderr)
    print("$ VIRTUAL_ENV=.venv " + shlex.join(args), file=sys.stderr)
    if options.dry_run:
        return 0
    return subprocess.run(args, cwd=ROOT, env=env, check=False).returncode  # noqa: S603 - our own argv


if __name__ == "__main__":
    sys.exit(main())
