"""Create one stage's resources on the local AWS stand-in, from config/pipeline.yml.

This mirrors what serverless.yml declares (tests/infra checks both against the same config): the
bucket with its uploads/*.csv -> SQS notification, the ingest queue and its DLQ, the stream
failure queue, the purchases table with its stream, the Glue database/table and the Athena
workgroup. Lambda functions and event-source mappings are NOT created in moto (see
../shared/notes/local-aws-facts.md): local/pollers.py drives the real handlers instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import boto3

from local import config


@dataclass(frozen=True)
class LocalStack:
    names: config.StackNames
    ingest_queue_url: str
    ingest_queue_arn: str
    ingest_dlq_url: str
    ingest_dlq_arn: str
    stream_failure_queue_url: str
    stream_failure_queue_arn: str
    table_stream_arn: str

    def lambda_environment(self) -> dict[str, str]:
        return config.lambda_environment(self.names)


def glue_table_input(names: config.StackNames) -> dict:
    """The Glue TableInput of the purchases table, as serverless.yml declares it."""
    cat = config.catalog()
    return {
        "Name": names.glue_table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json", "EXTERNAL": "TRUE"},
        "PartitionKeys": cat["partitionKeys"],
        "StorageDescriptor": {
            "Columns": cat["columns"],
            "Location": f"s3://{names.bucket}/{config.prefixes()['compras']}",
            "InputFormat": cat["inputFormat"],
            "OutputFormat": cat["outputFormat"],
            "SerdeInfo": {
                "SerializationLibrary": cat["serde"],
                "Parameters": dict(cat["serdeParameters"]),
            },
        },
    }


def tls_only_statement(resource_arns: list[str], service: str) -> dict:
    """Deny every request that does not use TLS (bucket and queue policies)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": f"{service}:*",
        "Resource": resource_arns,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _queue(sqs, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def create_stack(stage: str = "local", region: str | None = None) -> LocalStack:
    region = region or config.raw_config()["region"]
    account_id = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    names = config.stack_names(stage, account_id=account_id, region=region)
    queues = config.queue_settings()
    prefixes = config.prefixes()

    sqs = boto3.client("sqs", region_name=region)
    retention = str(queues["messageRetentionSeconds"])
    encrypted = {"MessageRetentionPeriod": retention, "SqsManagedSseEnabled": "true"}
    dlq_url, dlq_arn = _queue(sqs, names.ingest_dlq, encrypted)
    ingest_url, ingest_arn = _queue(
        sqs,
        names.ingest_queue,
        {
            **encrypted,
            "VisibilityTimeout": str(queues["ingestVisibilityTimeout"]),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queues["maxReceiveCount"]}),
        },
    )
    failure_url, failure_arn = _queue(sqs, names.stream_failure_queue, encrypted)
    bucket_arn = f"arn:aws:s3:::{names.bucket}"
    # Only S3 notifications from this bucket of this account may send to the ingest queue.
    sqs.set_queue_attributes(
        QueueUrl=ingest_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowUploadsNotificationsFromThisBucket",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": ingest_arn,
                            "Condition": {
                                "ArnEquals": {"aws:SourceArn": bucket_arn},
                                "StringEquals": {"aws:SourceAccount": account_id},
                            },
                        },
                        tls_only_statement([ingest_arn], "sqs"),
                    ],
                }
            )
        },
    )

    ddb = boto3.client("dynamodb", region_name=region)
    keys = config.table_keys()
    table = ddb.create_table(
        TableName=names.table,
        AttributeDefinitions=[
            {"AttributeName": keys["partitionKey"], "AttributeType": "S"},
            {"AttributeName": keys["sortKey"], "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": keys["partitionKey"], "KeyType": "HASH"},
            {"AttributeName": keys["sortKey"], "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]

    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=names.bucket)
    else:
        s3.create_bucket(Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_public_access_block(
        Bucket=names.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    # moto enforces the TLS-only Deny, and the local endpoint is plain HTTP: every S3 request would be
    # refused (403). Apply it only when the endpoint speaks TLS (serverless.yml always has it on AWS).
    if not os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        s3.put_bucket_policy(
            Bucket=names.bucket,
            Policy=json.dumps(
                {"Version": "2012-10-17", "Statement": [tls_only_statement([bucket_arn, f"{bucket_arn}/*"], "s3")]}
            ),
        )
    s3.put_bucket_encryption(
        Bucket=names.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_notification_configuration(
        Bucket=names.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": ingest_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": prefixes["uploads"]},
                                {"Name": "suffix", "Value": prefixes["uploadsSuffix"]},
                            ]
                        }
                    },
                }
            ]
        },
    )

    glue = boto3.client("glue", region_name=region)
    glue.create_database(DatabaseInput={"Name": names.glue_database})
    glue.create_table(DatabaseName=names.glue_database, TableInput=glue_table_input(names))
    athena = boto3.client("athena", region_name=region)
    athena.create_work_group(
        Name=names.athena_workgroup,
        Configuration={
            "ResultConfiguration": {
                "OutputLocation": f"s3://{names.bucket}/{prefixes['athenaResults']}",
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": config.athena_settings()["bytesScannedCutoffPerQuery"],
        },
    )
    return LocalStack(
        names=names,
        ingest_queue_url=ingest_url,
        ingest_queue_arn=ingest_arn,
        ingest_dlq_url=dlq_url,
        ingest_dlq_arn=dlq_arn,
        stream_failure_queue_url=failure_url,
        stream_failure_queue_arn=failure_arn,
        table_stream_arn=table["LatestStreamArn"],
    )
