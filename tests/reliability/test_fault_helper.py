"""The fault helper itself: each crafted answer is understood by botocore as the real AWS error."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.reliability import faults

pytestmark = pytest.mark.integration

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def test_s3_slow_down_is_a_retryable_503(stack):
    s3 = boto3.client("s3", config=NO_RETRY, **stack.aws.connection_options())
    bucket = stack.names.bucket
    s3.put_object(Bucket=bucket, Key="x/a.txt", Body=b"a")
    with faults.inject(s3, "GetObject", faults.slow_down()) as fault, pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="x/a.txt")
    assert fault.fired == 1
    assert error.value.response["Error"]["Code"] == "SlowDown"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket=bucket, Key="x/a.txt")["Body"].read() == b"a"


def test_botocore_retries_absorb_fewer_faults_than_its_attempts(stack, fast_botocore_retries):
    s3 = boto3.client(
        "s3", config=Config(retries={"mode": "standard", "total_max_attempts": 3}), **stack.aws.connection_options()
    )
    with faults.inject(s3, "PutObject", faults.internal_error(), times=2) as fault:
        s3.put_object(Bucket=stack.names.bucket, Key="x/b.txt", Body=b"b")
    assert (fault.seen, fault.fired) == (3, 2)
    assert s3.get_object(Bucket=stack.names.bucket, Key="x/b.txt")["Body"].read() == b"b"


def test_throttling_is_parsed_as_dynamodb_exception(stack):
    ddb = boto3.client("dynamodb", config=NO_RETRY, **stack.aws.connection_options())
    with faults.inject(ddb, "BatchWriteItem", faults.throttle()), pytest.raises(ClientError) as error:
        ddb.batch_write_item(
            RequestItems={
                stack.names.table: [{"PutRequest": {"Item": {"tenant_id": {"S": "t"}, "compra_id": {"S": "c"}}}}]
            }
        )
    assert error.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert ddb.scan(TableName=stack.names.table)["Count"] == 0


def test_partially_unprocessed_writes_the_kept_part_and_returns_the_rest(stack):
    ddb = boto3.client("dynamodb", config=NO_RETRY, **stack.aws.connection_options())
    requests = [{"PutRequest": {"Item": {"tenant_id": {"S": "t"}, "compra_id": {"S": f"c{i}"}}}} for i in range(5)]
    with faults.inject(ddb, "BatchWriteItem", faults.partially_unprocessed(stack.aws, keep=2)) as fault:
        result = ddb.batch_write_item(RequestItems={stack.names.table: requests})
    assert fault.fired == 1
    assert result["UnprocessedItems"] == {stack.names.table: requests[2:]}
    stored = {i["compra_id"]["S"] for i in ddb.scan(TableName=stack.names.table)["Items"]}
    assert stored == {"c0", "c1"}


def test_after_and_match_select_which_requests_fail(stack):
    s3 = boto3.client("s3", config=NO_RETRY, **stack.aws.connection_options())
    with faults.inject(s3, "PutObject", faults.crash(), after=1, match=faults.url_contains("/y/")) as fault:
        s3.put_object(Bucket=stack.names.bucket, Key="x/c.txt", Body=b"c")  # not matched
        s3.put_object(Bucket=stack.names.bucket, Key="y/c.txt", Body=b"c")  # matched, let through (after=1)
        with pytest.raises(faults.SimulatedCrash):
            s3.put_object(Bucket=stack.names.bucket, Key="y/d.txt", Body=b"d")
        s3.put_object(Bucket=stack.names.bucket, Key="y/e.txt", Body=b"e")  # times=1 used up
    assert (fault.seen, fault.fired) == (3, 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.names.bucket, Prefix="y/")["Contents"]}
    assert keys == {"y/c.txt", "y/e.txt"}
