from __future__ import annotations

import pytest

from lambdas.adapters import glue
from lambdas.adapters.glue import BATCH_LIMIT, PartitionRegistry, PartitionSpec, PartitionValuesError
from lambdas.domain.keys import partition_prefix

pytestmark = pytest.mark.integration


def spec(bucket: str, tenant: str, day: str = "07") -> PartitionSpec:
    return PartitionSpec(
        values=(tenant, "2026", "03", day), location=f"s3://{bucket}/{partition_prefix(tenant, '2026', '03', day)}"
    )


def partitions(stack) -> dict[tuple[str, ...], dict]:
    glue = stack.aws.client("glue")
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName=stack.names.glue_database, TableName=stack.names.glue_table
    )
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


@pytest.fixture
def registry(stack):
    return PartitionRegistry(stack.aws, stack.names.glue_database, stack.names.glue_table)


def test_creates_partitions_with_real_values_and_encoded_location(stack, registry):
    bucket = stack.names.bucket
    result = registry.ensure([spec(bucket, "../evil tenant"), spec(bucket, "store-1")])
    assert sorted(result.created) == [("../evil tenant", "2026", "03", "07"), ("store-1", "2026", "03", "07")]
    stored = partitions(stack)
    evil = stored[("../evil tenant", "2026", "03", "07")]["StorageDescriptor"]
    assert evil["Location"] == f"s3://{bucket}/compras/~2E~2E~2Fevil~20tenant/2026/03/07/"
    table = stack.aws.client("glue").get_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)
    expected = dict(table["Table"]["StorageDescriptor"], Location=evil["Location"])
    assert {k: evil[k] for k in ("Columns", "InputFormat", "OutputFormat", "SerdeInfo", "Location")} == {
        k: expected[k] for k in ("Columns", "InputFormat", "OutputFormat", "SerdeInfo", "Location")
    }


def test_existing_partitions_are_not_an_error(stack, registry):
    bucket = stack.names.bucket
    PartitionRegistry(stack.aws, stack.names.glue_database, stack.names.glue_table).ensure([spec(bucket, "a")])
    result = registry.ensure([spec(bucket, "a"), spec(bucket, "b")])
    assert result.already_existed == [("a", "2026", "03", "07")]
    assert result.created == [("b", "2026", "03", "07")]
    assert not result.failed
    assert set(partitions(stack)) == {("a", "2026", "03", "07"), ("b", "2026", "03", "07")}


def test_glue_decides_which_partitions_exist_one_call_per_batch(stack, registry):
    bucket = stack.names.bucket
    registry.ensure([spec(bucket, "a")])
    calls = []
    glue = stack.aws.client("glue")
    glue.meta.events.register("before-call.glue.*", lambda model, **_: calls.append(model.name))
    try:
        again = registry.ensure([spec(bucket, "a"), spec(bucket, "a")])
        assert (again.created, again.already_existed, again.failed) == ([], [("a", "2026", "03", "07")], {})
        assert calls == ["BatchGetPartition"]
        calls.clear()
        registry.ensure([spec(bucket, "c")])
        assert calls == ["BatchGetPartition", "BatchCreatePartition"]  # the table descriptor is cached
    finally:
        glue.meta.events.unregister("before-call.glue.*")


def test_a_partition_deleted_behind_a_warm_registry_is_registered_again(stack, registry):
    bucket = stack.names.bucket
    registry.ensure([spec(bucket, "a")])
    stack.aws.client("glue").delete_partition(
        DatabaseName=stack.names.glue_database,
        TableName=stack.names.glue_table,
        PartitionValues=["a", "2026", "03", "07"],
    )
    result = registry.ensure([spec(bucket, "a")])
    assert result.created == [("a", "2026", "03", "07")]
    assert set(partitions(stack)) == {("a", "2026", "03", "07")}


def test_a_table_deleted_and_recreated_behind_a_warm_registry(stack, registry):
    bucket = stack.names.bucket
    glue = stack.aws.client("glue")
    table = glue.get_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)["Table"]
    registry.ensure([spec(bucket, "a")])
    glue.delete_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)

    gone = registry.ensure([spec(bucket, "a"), spec(bucket, "b")])
    assert set(gone.failed) == {("a", "2026", "03", "07"), ("b", "2026", "03", "07")}  # retried, never "done"
    assert all("EntityNotFoundException" in reason for reason in gone.failed.values())

    recreated = {k: table[k] for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")}
    recreated["StorageDescriptor"] = dict(recreated["StorageDescriptor"], Compressed=True)  # a new descriptor
    glue.create_table(DatabaseName=stack.names.glue_database, TableInput=recreated)
    again = registry.ensure([spec(bucket, "a"), spec(bucket, "b")])
    assert sorted(again.created) == [("a", "2026", "03", "07"), ("b", "2026", "03", "07")]
    stored = partitions(stack)
    assert set(stored) == {("a", "2026", "03", "07"), ("b", "2026", "03", "07")}
    assert all(p["StorageDescriptor"]["Compressed"] is True for p in stored.values())


def test_a_table_recreated_between_two_batches_gets_its_partitions_and_new_descriptor(stack, registry):
    bucket = stack.names.bucket
    glue = stack.aws.client("glue")
    table = glue.get_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)["Table"]
    registry.ensure([spec(bucket, "a")])
    glue.delete_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)
    recreated = {k: table[k] for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")}
    recreated["StorageDescriptor"] = dict(recreated["StorageDescriptor"], Compressed=True)
    glue.create_table(DatabaseName=stack.names.glue_database, TableInput=recreated)

    result = registry.ensure([spec(bucket, "a")])  # no call failed in between: Glue still says it is missing
    assert result.created == [("a", "2026", "03", "07")]
    assert partitions(stack)[("a", "2026", "03", "07")]["StorageDescriptor"]["Compressed"] is True


def test_more_than_one_batch(stack, registry):
    bucket = stack.names.bucket
    specs = [spec(bucket, f"t{i:03d}") for i in range(BATCH_LIMIT + 5)]
    result = registry.ensure(specs)
    assert len(result.created) == BATCH_LIMIT + 5
    assert len(partitions(stack)) == BATCH_LIMIT + 5


def test_wrong_number_of_values_is_rejected(stack, registry):
    bad = PartitionSpec(values=("a", "2026", "03"), location="s3://b/compras/a/2026/03/")
    with pytest.raises(PartitionValuesError, match="4 partition keys"):
        registry.ensure([bad])
    assert partitions(stack) == {}


def test_missing_table_marks_partitions_failed(aws):
    registry = PartitionRegistry(aws.clients, "no-such-db", "no-such-table")
    result = registry.ensure([PartitionSpec(values=("a", "2026", "03", "07"), location="s3://b/x/")])
    assert list(result.failed) == [("a", "2026", "03", "07")]
    assert "cannot read Glue table no-such-db.no-such-table" in result.failed[("a", "2026", "03", "07")]


def test_catalog_reads_return_none_for_what_does_not_exist(stack):
    assert glue.get_database(stack.aws, "no-such-database") is None
    assert glue.get_table(stack.aws, stack.names.glue_database, "no_such_table") is None
    assert (
        glue.get_table(stack.aws, stack.names.glue_database, stack.names.glue_table)["Name"] == stack.names.glue_table
    )
    assert glue.get_partitions(stack.aws, stack.names.glue_database, stack.names.glue_table) == []
