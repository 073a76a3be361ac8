"""verify_datacatalog.py against the local stack (moto server): healthy, missing, orphaned, wrong column, repair."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

import verify_datacatalog
from lambdas.adapters import glue
from lambdas.domain import keys

pytestmark = pytest.mark.integration

DOCS = [("t1", "c1", "2024-05-01 10:00:00"), ("Tienda Ñ/2", "c2", "2024-05-02 11:00:00")]


def put_document(stack, tenant: str, compra: str, fecha: str, seq: str = "100") -> tuple[str, ...]:
    key = keys.object_key(
        event_name="INSERT",
        tenant_id=tenant,
        compra_id=compra,
        fecha=fecha,
        approximate_creation_time=datetime(2024, 6, 1, tzinfo=UTC),
        sequence_number=seq,
    )
    stack.aws.client("s3").put_object(
        Bucket=stack.names.bucket, Key=key, Body=b'{"compra_id": "%s"}\n' % compra.encode()
    )
    return keys.partition_values(tenant, fecha)


def register(stack, values: tuple[str, ...]) -> None:
    location = f"s3://{stack.names.bucket}/{keys.partition_prefix(*values)}"
    result = glue.PartitionRegistry(stack.aws, stack.names.glue_database, stack.names.glue_table).ensure(
        [glue.PartitionSpec(values, location)]
    )
    assert not result.failed


@pytest.fixture(autouse=True)
def cli_credentials(monkeypatch):
    """The command line tool takes its credentials from boto3's usual chain (here: moto's fake ones); the endpoint
    and region are its own options."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def run(aws, capsys, *extra: str) -> tuple[int, str]:
    code = verify_datacatalog.main(["--stage", "test", "--endpoint-url", aws.endpoint_url, *extra])
    return code, capsys.readouterr().out


@pytest.fixture
def healthy(stack):
    for tenant, compra, fecha in DOCS:
        register(stack, put_document(stack, tenant, compra, fecha))
    return stack


def test_healthy_catalog_passes(aws, healthy, capsys):
    code, out = run(aws, capsys)
    assert code == 0, out
    assert "catalog is healthy" in out
    assert "2 registered in Glue, 2 with documents in S3 (2 documents)" in out
    assert "[SKIP] test query" in out and "moto executes nothing" in out
    assert "6 columns match the contract" in out


def test_missing_partition_is_reported_and_repaired(aws, healthy, capsys):
    values = put_document(healthy, "t1", "c9", "2024-05-09 08:00:00")
    code, out = run(aws, capsys)
    assert code == 1
    assert "[FAIL] missing partition" in out and "tenant_id='t1' 2024-05-09: 1 documents" in out
    assert "--repair" in out

    code, out = run(aws, capsys, "--repair")
    assert code == 0, out
    assert "registered 1 of 1 missing partitions" in out
    partition = aws.clients.client("glue").get_partition(
        DatabaseName=healthy.names.glue_database, TableName=healthy.names.glue_table, PartitionValues=list(values)
    )["Partition"]
    assert partition["StorageDescriptor"]["Location"] == f"s3://{healthy.names.bucket}/compras/t1/2024/05/09/"
    assert run(aws, capsys)[0] == 0


def test_orphaned_partition_is_reported(aws, healthy, capsys):
    register(healthy, ("ghost", "2024", "01", "01"))
    code, out = run(aws, capsys)
    assert code == 1
    assert "[FAIL] orphaned partition" in out and "tenant_id='ghost' 2024-01-01" in out


def test_wrong_column_and_location_are_reported(aws, healthy, capsys):
    client = aws.clients.client("glue")
    table = client.get_table(DatabaseName=healthy.names.glue_database, Name=healthy.names.glue_table)["Table"]
    table_input = {k: copy.deepcopy(table[k]) for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType")}
    columns = table_input["StorageDescriptor"]["Columns"]
    next(c for c in columns if c["Name"] == "fecha")["Type"] = "timestamp"
    columns.append({"Name": "extra", "Type": "string"})
    table_input["StorageDescriptor"]["Location"] = "s3://elsewhere/compras/"
    client.update_table(DatabaseName=healthy.names.glue_database, TableInput=table_input)
    code, out = run(aws, capsys)
    assert code == 1
    assert "column 'fecha' has type timestamp, the contract says string" in out
    assert "unexpected column 'extra'" in out
    assert "'s3://elsewhere/compras/', expected 's3://" in out


def test_unexpected_object_is_a_warning(aws, healthy, capsys):
    aws.clients.client("s3").put_object(Bucket=healthy.names.bucket, Key="compras/stray.txt", Body=b"x")
    code, out = run(aws, capsys)
    assert code == 0, out
    assert "[WARN] unexpected object" in out and "compras/stray.txt" in out


def test_stage_not_deployed(aws, capsys):
    code, out = run(aws, capsys)
    assert code == 1
    assert "Glue database 'test-compras-datacatalog' does not exist" in out


def test_compacted_table_exists_has_the_schema_and_a_recent_merge(aws, healthy, capsys):
    from local import compaction

    code, out = run(aws, capsys)
    assert code == 0 and "[WARN] iceberg table" in out and "the first compactarCompras run creates it" in out
    compaction.run(healthy.aws, healthy.names.bucket, glue_database=healthy.names.glue_database)
    code, out = run(aws, capsys)
    assert code == 0, out
    assert "[OK  ] iceberg table" in out and "table_type ICEBERG" in out
    assert "9 iceberg columns match the contract" in out
    assert "[OK  ] last merge" in out and "1 merge(s) so far" in out


def test_stale_merge_and_missing_or_wrong_iceberg_table_fail(aws, healthy, capsys):
    from lambdas.domain.compaction import CompactionState
    from local import compaction

    compaction.run(healthy.aws, healthy.names.bucket, glue_database=healthy.names.glue_database)
    store = compaction.state_store(healthy.aws, healthy.names.bucket)
    old = datetime(2024, 1, 1, tzinfo=UTC)
    store.save(CompactionState(recent_watermark=old, full_watermark=old, last_merge_at=old, merges=1))
    code, out = run(aws, capsys)
    assert code == 1 and "[FAIL] last merge" in out and "queries read stale data" in out

    table = aws.clients.client("glue").get_table(DatabaseName=healthy.names.glue_database, Name="compras_iceberg")[
        "Table"
    ]
    descriptor = copy.deepcopy(table["StorageDescriptor"])
    descriptor["Columns"][0]["Type"] = "int"
    aws.clients.client("glue").update_table(
        DatabaseName=healthy.names.glue_database,
        TableInput={"Name": "compras_iceberg", "Parameters": table["Parameters"], "StorageDescriptor": descriptor},
    )
    code, out = run(aws, capsys)
    assert "[FAIL] iceberg columns" in out and "'tenant_id' has type int" in out

    aws.clients.client("glue").delete_table(DatabaseName=healthy.names.glue_database, Name="compras_iceberg")
    code, out = run(aws, capsys)
    assert code == 1 and "[FAIL] iceberg table" in out and "does not exist" in out
