"""Create one stage's resources on the local AWS stand-in, from config/pipeline.yml.

This mirrors what serverless.yml declares (tests/infra checks both against the same config): the
bucket with its uploads/*.csv -> SQS notification, the ingest queue and its DLQ, the stream
failure queue, the purchases table with its stream, the Glue database/table and the Athena
workgroup. Lambda functions and event-source mappings are NOT created in moto (see
../shared/notes/local-aws-facts.md): local/pollers.py drives the real handlers instead.
"""

from __future__ import annotations

import json
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
    dlq_url, dlq_arn = _queue(sqs, names.ingest_dlq, {"MessageRetentionPeriod": retention})
    ingest_url, ingest_arn = _queue(
        sqs,
        names.ingest_queue,
        {
            "VisibilityTimeout": str(queues["ingestVisibilityTimeout"]),
            "MessageRetentionPeriod": retention,
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queues["maxReceiveCount"]}
            ),
        },
    )
    failure_url, failure_arn = _queue(sqs, names.stream_failure_queue, {"MessageRetentionPeriod": retention})

    ddb = boto3.client("dynamodb", region_name=region)
    table = ddb.create_table(
        TableName=names.table,
        AttributeDefinitions=[
            {"AttributeName": "tenant_id", "AttributeType": "S"},
            {"AttributeName": "compra_id", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "tenant_id", "KeyType": "HASH"},
            {"AttributeName": "compra_id", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]

    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=names.bucket)
    else:
        s3.create_bucket(Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": region})
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

    cat = config.catalog()
    glue = boto3.client("glue", region_name=region)
    glue.create_database(DatabaseInput={"Name": names.glue_database})
    glue.create_table(
        DatabaseName=names.glue_database,
        TableInput={
            "Name": names.glue_table,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "json", "EXTERNAL": "TRUE"},
            "PartitionKeys": cat["partitionKeys"],
            "StorageDescriptor": {
                "Columns": cat["columns"],
                "Location": f"s3://{names.bucket}/{prefixes['compras']}",
                "InputFormat": cat["inputFormat"],
                "OutputFormat": cat["outputFormat"],
                "SerdeInfo": {"SerializationLibrary": cat["serde"], "Parameters": {"paths": ",".join(
                    c["Name"] for c in cat["columns"])}},
            },
        },
    )
    athena = boto3.client("athena", region_name=region)
    athena.create_work_group(
        Name=names.athena_workgroup,
        Configuration={
            "ResultConfiguration": {
                "OutputLocation": f"s3://{names.bucket}/{prefixes['athenaResults']}",
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
            "EnforceWorkGroupConfiguration": True,
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

