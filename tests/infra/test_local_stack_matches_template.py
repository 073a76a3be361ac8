"""One source of truth: what local/stack.py creates on moto (the `stack` fixture, stage "test")
equals what the packaged template declares (stage "dev"), once the stage is accounted for.

Both are built from config/pipeline.yml; this test catches either side drifting from it."""

from __future__ import annotations

import json

import boto3
import pytest

from local import config
from local.stack import tls_only_statement
from tests.infra import cfn

pytestmark = [pytest.mark.infra, pytest.mark.integration]


def _template_value(value, stack):
    """A template value with this test stack's ARNs in place of the intrinsics it uses."""
    arns = {
        ("IngestDeadLetterQueue", "Arn"): stack.ingest_dlq_arn,
        ("IngestQueue", "Arn"): stack.ingest_queue_arn,
        ("StreamFailureQueue", "Arn"): stack.stream_failure_queue_arn,
    }
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return arns[tuple(value["Fn::GetAtt"])]
    return value


def _queue_attributes(url: str) -> dict[str, str]:
    return boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_queues_match(stack, template):
    pairs = (
        (stack.ingest_queue_url, "IngestQueue"),
        (stack.ingest_dlq_url, "IngestDeadLetterQueue"),
        (stack.stream_failure_queue_url, "StreamFailureQueue"),
    )
    for url, logical_id in pairs:
        declared = cfn.resource(template, logical_id)["Properties"]
        actual = _queue_attributes(url)
        assert declared["QueueName"].replace("-dev-", "-test-") == url.rsplit("/", 1)[1]
        assert str(declared["MessageRetentionPeriod"]) == actual["MessageRetentionPeriod"]
        assert str(declared["SqsManagedSseEnabled"]).lower() == actual["SqsManagedSseEnabled"]
        if "VisibilityTimeout" in declared:
            assert str(declared["VisibilityTimeout"]) == actual["VisibilityTimeout"]
        if "RedrivePolicy" in declared:
            expected = {k: _template_value(v, stack) for k, v in declared["RedrivePolicy"].items()}
            assert json.loads(actual["RedrivePolicy"]) == expected


def test_queue_policy_matches(stack, template):
    declared = cfn.resource(template, "IngestQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
    actual = json.loads(_queue_attributes(stack.ingest_queue_url)["Policy"])["Statement"]
    assert [s["Sid"] for s in declared] == [s["Sid"] for s in actual]
    for d, a in zip(declared, actual, strict=True):
        assert (d["Effect"], d["Principal"], d["Action"]) == (a["Effect"], a["Principal"], a["Action"])
    allow = actual[0]["Condition"]
    assert allow["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{stack.names.bucket}"
    assert allow["StringEquals"]["aws:SourceAccount"] == stack.names.account_id


def test_table_matches(stack, template):
    declared = cfn.resource(template, "PurchasesTable")["Properties"]
    actual = boto3.client("dynamodb").describe_table(TableName=stack.names.table)["Table"]
    assert actual["KeySchema"] == declared["KeySchema"]
    assert sorted(actual["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    assert actual["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    assert actual["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": declared["StreamSpecification"]["StreamViewType"],
    }


def test_glue_table_matches(stack, template):
    declared = cfn.resource(template, "GlueComprasTable")["Properties"]["TableInput"]
    actual = boto3.client("glue").get_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)[
        "Table"
    ]
    assert actual["Name"] == declared["Name"]
    assert actual["TableType"] == declared["TableType"]
    assert actual["Parameters"] == declared["Parameters"]
    assert actual["PartitionKeys"] == declared["PartitionKeys"]
    d_sd, a_sd = declared["StorageDescriptor"], actual["StorageDescriptor"]
    assert a_sd["Columns"] == d_sd["Columns"]
    assert a_sd["SerdeInfo"] == d_sd["SerdeInfo"]
    assert (a_sd["InputFormat"], a_sd["OutputFormat"]) == (d_sd["InputFormat"], d_sd["OutputFormat"])
    location = cfn.sub_text(d_sd["Location"]).replace("${DataBucket}", stack.names.bucket)
    assert a_sd["Location"] == location


def test_bucket_notification_matches(stack, template):
    declared = cfn.resource(template, "DataBucket")["Properties"]["NotificationConfiguration"]
    actual = boto3.client("s3").get_bucket_notification_configuration(Bucket=stack.names.bucket)
    (d_queue,) = declared["QueueConfigurations"]
    (a_queue,) = actual["QueueConfigurations"]
    assert a_queue["QueueArn"] == stack.ingest_queue_arn
    assert a_queue["Events"] == [d_queue["Event"]]
    rules = {r["Name"].lower(): r["Value"] for r in a_queue["Filter"]["Key"]["FilterRules"]}
    assert rules == {r["Name"]: r["Value"] for r in d_queue["Filter"]["S3Key"]["Rules"]}
    assert not actual.get("LambdaFunctionConfigurations") and not actual.get("TopicConfigurations")


def test_bucket_protection_matches(stack, template):
    s3 = boto3.client("s3")
    declared = cfn.resource(template, "DataBucket")["Properties"]
    block = s3.get_public_access_block(Bucket=stack.names.bucket)["PublicAccessBlockConfiguration"]
    assert block == declared["PublicAccessBlockConfiguration"]
    (rule,) = s3.get_bucket_encryption(Bucket=stack.names.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    (declared_rule,) = declared["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert (
        rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        == declared_rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    )
    # The local endpoint is plain HTTP and moto enforces the TLS-only Deny, so local/stack.py leaves
    # the policy off there; the statement it would apply is the declared one.
    bucket_arn = f"arn:aws:s3:::{stack.names.bucket}"
    statement = tls_only_statement([bucket_arn, f"{bucket_arn}/*"], "s3")
    (declared_statement,) = cfn.resource(template, "DataBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    for key in ("Sid", "Effect", "Principal", "Action", "Condition"):
        assert statement[key] == declared_statement[key], key


def test_athena_workgroup_matches(stack, template):
    declared = cfn.resource(template, "AthenaWorkGroup")["Properties"]["WorkGroupConfiguration"]
    actual = boto3.client("athena").get_work_group(WorkGroup=stack.names.athena_workgroup)["WorkGroup"]
    configuration = actual["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is declared["EnforceWorkGroupConfiguration"]
    result = configuration["ResultConfiguration"]
    expected_location = cfn.sub_text(declared["ResultConfiguration"]["OutputLocation"]).replace(
        "${DataBucket}", stack.names.bucket
    )
    assert result["OutputLocation"] == expected_location
    assert result["EncryptionConfiguration"] == declared["ResultConfiguration"]["EncryptionConfiguration"]


def test_lambda_environment_of_the_local_stack_is_the_declared_one(stack, template):
    declared = cfn.resource(template, "IngestarTicketsLambdaFunction")["Properties"]["Environment"]["Variables"]
    local_env = stack.lambda_environment()
    assert set(local_env) == set(declared)
    assert local_env == config.lambda_environment(stack.names)
