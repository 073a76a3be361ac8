#!/usr/bin/env python3
"""Check a stage's Glue data catalog against the contract and against what is really in S3.

    python verify_datacatalog.py --stage dev                       # real AWS (your default credentials)
    python verify_datacatalog.py --stage local --endpoint-url http://127.0.0.1:4566   # the local stack
    python verify_datacatalog.py --stage dev --repair              # also register missing partitions

Checks, in order: the Glue database; the table; its SerDe, input/output formats and SerDe `paths`; its
location (s3://<bucket>/compras/); its columns and partition keys against config/pipeline.yml `catalog`
(the JSON contract, docs/json-contract.md); the partitions registered in Glue against the partition
prefixes that hold documents in S3 — missing (documents Athena cannot see), orphaned (registered, no
objects) and wrong location; keys under compras/ that do not follow the layout; the compacted Iceberg table
(docs/compaction.md): it exists, is an Iceberg table at s3://<bucket>/iceberg/<table>/, has the columns of the
Athena DDL, and its last committed merge (the state object of compactarCompras) is younger than
functions.compaction.staleAfterHours; and, on real AWS only, a test query in the stage's workgroup (Athena in
moto executes nothing, so it is skipped there and the report says so). `--repair` registers the missing
partitions (BatchCreatePartition, the table's storage descriptor, location = the encoded prefix) and checks
again.

Names come from config/pipeline.yml for the stage (bucket: account and region resolved; `--bucket`
overrides it like the `bucketName` deploy parameter). Exit status: 0 all good, 1 problems found,
2 could not check (e.g. no credentials).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdas.adapters.clients import AwsClients

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass
class Finding:
    level: str
    check: str
    message: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    missing: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, level: str, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))

    @property
    def failed(self) -> bool:
        return any(f.level == FAIL for f in self.findings)

    def render(self) -> str:
        width = max((len(f.check) for f in self.findings), default=10)
        lines = [f"[{f.level:<4}] {f.check:<{width}}  {f.message}" for f in self.findings]
        counts = {level: sum(f.level == level for f in self.findings) for level in (OK, WARN, FAIL, SKIP)}
        verdict = "PROBLEMS FOUND" if self.failed else "catalog is healthy"
        lines.append(
            f"\n{verdict}: {counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed, {counts[SKIP]} skipped"
        )
        return "\n".join(lines)


def _type(text: str) -> str:
    return text.replace(" ", "").lower()


def compare_columns(kind: str, actual: list[dict[str, Any]], expected: list[dict[str, Any]], report: Report) -> None:
    """Names, order and types of columns (or partition keys) against the contract."""
    actual_map = {c["Name"]: _type(c.get("Type", "")) for c in actual}
    expected_map = {c["Name"]: _type(c["Type"]) for c in expected}
    problems = []
    for name in expected_map:
        if name not in actual_map:
            problems.append(f"missing {kind} {name!r} ({expected_map[name]})")
        elif actual_map[name] != expected_map[name]:
            problems.append(f"{kind} {name!r} has type {actual_map[name]}, the contract says {expected_map[name]}")
    problems += [f"unexpected {kind} {name!r} ({actual_map[name]})" for name in actual_map if name not in expected_map]
    if not problems and [c["Name"] for c in actual] != [c["Name"] for c in expected]:
        problems.append(f"{kind}s are in another order: {[c['Name'] for c in actual]}")
    if problems:
        for problem in problems:
            report.add(FAIL, f"{kind}s", problem)
    else:
        report.add(OK, f"{kind}s", f"{len(expected)} {kind}s match the contract")


def check_table(table: dict[str, Any], catalog: dict[str, Any], location: str, report: Report) -> None:
    descriptor = table.get("StorageDescriptor", {})
    serde = descriptor.get("SerdeInfo", {})
    for check, actual, expected in [
        ("serde", serde.get("SerializationLibrary"), catalog["serde"]),
        ("input format", descriptor.get("InputFormat"), catalog["inputFormat"]),
        ("output format", descriptor.get("OutputFormat"), catalog["outputFormat"]),
    ]:
        if actual == expected:
            report.add(OK, check, actual)
        else:
            report.add(FAIL, check, f"{actual!r}, expected {expected!r}")
    expected_paths = ",".join(c["Name"] for c in catalog["columns"])
    paths = serde.get("Parameters", {}).get("paths")
    if paths is None:
        report.add(WARN, "serde paths", f"no `paths` SerDe parameter (expected {expected_paths!r})")
    elif paths.replace(" ", "") != expected_paths:
        report.add(FAIL, "serde paths", f"{paths!r}, expected {expected_paths!r}")
    else:
        report.add(OK, "serde paths", paths)
    actual_location = descriptor.get("Location", "")
    if actual_location.rstrip("/") == location.rstrip("/"):
        report.add(OK, "location", actual_location)
    else:
        report.add(FAIL, "location", f"{actual_location!r}, expected {location!r}")
    compare_columns("column", descriptor.get("Columns", []), catalog["columns"], report)
    compare_columns("partition key", table.get("PartitionKeys", []), catalog["partitionKeys"], report)


def check_iceberg(
    table: dict[str, Any] | None,
    state: Any,
    *,
    expected_columns: list[dict[str, str]],
    location: str,
    stale_after_hours: float,
    now: Any,
    report: Report,
) -> None:
    """The compacted table (Glue entry written by Athena's DDL) and the age of its last merge."""
    if table is None:
        level = FAIL if state.last_merge_at is not None else WARN
        report.add(
            level,
            "iceberg table",
            "does not exist" + ("" if level == FAIL else ": the first compactarCompras run creates it"),
        )
    else:
        kind = (table.get("Parameters") or {}).get("table_type", "")
        if kind.upper() == "ICEBERG":
            report.add(OK, "iceberg table", f"{table['Name']} (table_type ICEBERG)")
        else:
            report.add(FAIL, "iceberg table", f"{table['Name']} has table_type {kind!r}, expected ICEBERG")
        descriptor = table.get("StorageDescriptor", {})
        actual_location = descriptor.get("Location", "")
        if actual_location.rstrip("/") == location.rstrip("/"):
            report.add(OK, "iceberg location", actual_location)
        else:
            report.add(FAIL, "iceberg location", f"{actual_location!r}, expected {location!r}")
        compare_columns("iceberg column", descriptor.get("Columns", []), expected_columns, report)
    if state.last_merge_at is None:
        report.add(WARN, "last merge", "no merge committed yet (compactarCompras has not run, or every run failed)")
        return
    age_hours = (now - state.last_merge_at).total_seconds() / 3600
    message = f"{state.last_merge_at.isoformat()} ({age_hours:.1f} h ago; {state.merges} merge(s) so far)"
    if age_hours > stale_after_hours:
        report.add(FAIL, "last merge", f"{message}: older than {stale_after_hours} h, queries read stale data")
    else:
        report.add(OK, "last merge", message)


def _show(values: tuple[str, ...]) -> str:
    return "tenant_id={!r} {}-{}-{}".format(*values) if len(values) == 4 else repr(values)


def check_partitions(
    glue_partitions: list[dict[str, Any]],
    s3_partitions: dict[tuple[str, str, str, str], int],
    unexpected_keys: list[str],
    location_of: Any,
    report: Report,
    limit: int = 20,
) -> None:
    """Glue partitions vs partitions that hold documents in S3; fills report.missing."""
    registered: dict[tuple[str, ...], str] = {}
    for partition in glue_partitions:
        values = tuple(partition.get("Values", []))
        registered[values] = partition.get("StorageDescriptor", {}).get("Location", "")
    in_s3 = set(s3_partitions)
    missing = sorted(in_s3 - set(registered))
    orphaned = sorted(set(registered) - in_s3)
    report.missing = list(missing)
    report.add(
        OK if not missing and not orphaned else WARN,
        "partitions",
        f"{len(registered)} registered in Glue, {len(in_s3)} with documents in S3 "
        f"({sum(s3_partitions.values())} documents)",
    )
    for values in missing[:limit]:
        report.add(FAIL, "missing partition", f"{_show(values)}: {s3_partitions[values]} documents Athena cannot see")
    for values in orphaned[:limit]:
        report.add(FAIL, "orphaned partition", f"{_show(values)}: registered in Glue, no documents in S3")
    for label, items in (("missing partition", missing), ("orphaned partition", orphaned)):
        if len(items) > limit:
            report.add(FAIL, label, f"... and {len(items) - limit} more")
    wrong = []
    for values, actual in sorted(registered.items()):
        if len(values) != 4:
            report.add(FAIL, "partition values", f"{values!r}: expected 4 values (tenant_id, year, month, day)")
            continue
        expected = location_of(values)
        if actual.rstrip("/") != expected.rstrip("/"):
            wrong.append((values, actual, expected))
    for values, actual, expected in wrong[:limit]:
        report.add(FAIL, "partition location", f"{_show(values)}: {actual!r}, expected {expected!r}")
    if not missing and not orphaned and not wrong:
        report.add(OK, "partitions match", "every partition with documents is registered, with the right location")
    for key in unexpected_keys[:limit]:
        report.add(WARN, "unexpected object", f"{key!r} does not follow the document key layout (ignored by checks)")


def verify(
    aws: AwsClients,
    *,
    stage: str,
    region: str,
    endpoint_url: str | None,
    bucket: str | None = None,
    repair: bool = False,
    run_query: bool = True,
) -> Report:
    import pipeline_config as config
    from lambdas.adapters import glue, s3
    from lambdas.domain import keys

    report = Report()
    names = config.stack_names(stage, account_id=aws.client("sts").get_caller_identity()["Account"], region=region)
    bucket = bucket or names.bucket
    prefix = config.prefixes()["compras"]
    catalog = config.catalog()
    target = f"endpoint {endpoint_url}" if endpoint_url else f"AWS region {region}"
    report.add(OK, "target", f"stage {stage!r} on {target}; bucket {bucket}")

    if glue.get_database(aws, names.glue_database) is None:
        report.add(FAIL, "database", f"Glue database {names.glue_database!r} does not exist (is the stage deployed?)")
        return report
    report.add(OK, "database", names.glue_database)
    table = glue.get_table(aws, names.glue_database, names.glue_table)
    if table is None:
        report.add(FAIL, "table", f"Glue table {names.glue_database}.{names.glue_table} does not exist")
        return report
    report.add(OK, "table", f"{names.glue_database}.{names.glue_table} ({table.get('TableType', '?')})")
    check_table(table, catalog, f"s3://{bucket}/{prefix}", report)

    if not s3.bucket_exists(aws, bucket):
        report.add(FAIL, "bucket", f"bucket {bucket!r} does not exist or is not readable")
        return report

    def location_of(values: tuple[str, ...]) -> str:
        return f"s3://{bucket}/{keys.partition_prefix(*values, prefix=prefix)}"

    in_s3 = s3.document_partitions(aws, bucket, prefix)
    partitions = glue.get_partitions(aws, names.glue_database, names.glue_table)
    if repair:
        registered = {tuple(p.get("Values", [])) for p in partitions}
        missing = sorted(set(in_s3.partitions) - registered)
        if missing:
            registry = glue.PartitionRegistry(aws, names.glue_database, names.glue_table)
            result = registry.ensure(glue.PartitionSpec(values, location_of(values)) for values in missing)
            message = f"registered {len(result.created)} of {len(missing)} missing partitions"
            if result.failed:
                values, reason = next(iter(result.failed.items()))
                message += f"; {len(result.failed)} failed, e.g. {_show(values)}: {reason}"
            report.add(FAIL if result.failed else OK, "repair", message)
            partitions = glue.get_partitions(aws, names.glue_database, names.glue_table)
        else:
            report.add(OK, "repair", "nothing to repair: no partition is missing")
    check_partitions(partitions, in_s3.partitions, in_s3.unexpected_keys, location_of, report)
    if report.missing and not repair:
        report.add(WARN, "hint", "run again with --repair to register the missing partitions")

    from lambdas.compaction.service import S3StateStore
    from lambdas.domain import compaction

    raw = config.raw_config()
    iceberg_table = raw["names"]["icebergTable"]
    check_iceberg(
        glue.get_table(aws, names.glue_database, iceberg_table),
        S3StateStore(aws, bucket, config.prefixes()["compaction"]).load(),
        expected_columns=[{"Name": n, "Type": k} for n, k in compaction.table_columns(catalog["columns"])],
        location=f"s3://{bucket}/{config.prefixes()['iceberg']}{iceberg_table}/",
        stale_after_hours=float(raw["functions"]["compaction"]["staleAfterHours"]),
        now=datetime.now(UTC),
        report=report,
    )

    if endpoint_url:
        report.add(SKIP, "test query", "Athena in moto executes nothing (always empty): skipped on a local endpoint")
    elif not run_query:
        report.add(SKIP, "test query", "--no-query given")
    else:
        from lambdas.adapters import athena

        sql = f"SELECT tenant_id, year, month, day, compra_id FROM {names.glue_table} LIMIT 1"  # noqa: S608  # nosec B608 - table name from config
        try:
            result = athena.run_query(
                aws, sql, workgroup=names.athena_workgroup, database=names.glue_database, timeout_seconds=120
            )
        except Exception as error:  # every failure of the test query is a finding, with Athena's reason
            report.add(FAIL, "test query", f"{sql!r} in workgroup {names.athena_workgroup}: {error}")
        else:
            report.add(
                OK,
                "test query",
                f"{sql!r} in workgroup {names.athena_workgroup}: {len(result.rows)} row(s), "
                f"{result.data_scanned_bytes} bytes scanned",
            )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_datacatalog.py", description="Check a stage's Glue catalog against the contract and S3."
    )
    parser.add_argument("--stage", required=True, help="the stage to check (e.g. dev, prod, local)")
    parser.add_argument("--region", help="AWS region (default: config/pipeline.yml `region`)")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint, e.g. http://127.0.0.1:4566 (local)")
    parser.add_argument("--bucket", help="bucket name, if deployed with the bucketName parameter")
    parser.add_argument("--repair", action="store_true", help="register partitions that are missing in Glue")
    parser.add_argument("--no-query", action="store_true", help="skip the Athena test query on real AWS")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    import pipeline_config as config

    region = args.region or os.environ.get("AWS_REGION") or config.raw_config()["region"]
    # Endpoint and region passed to the clients (credentials: boto3's usual chain); the environment is only read.
    aws = AwsClients(endpoint_url=args.endpoint_url, region=region)
    try:
        report = verify(
            aws,
            stage=args.stage,
            region=region,
            endpoint_url=args.endpoint_url,
            bucket=args.bucket,
            repair=args.repair,
            run_query=not args.no_query,
        )
    except (BotoCoreError, ClientError) as error:
        print(f"verify_datacatalog: could not check stage {args.stage!r}: {error}", file=sys.stderr)
        return 2
    print(report.render())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
