"""Read a stage's Glue catalog and exported-document prefixes (the AWS side of verify_datacatalog.py).

Plain boto3 reads through lambdas.adapters.clients (so AWS_ENDPOINT_URL / --endpoint-url point them at the
local stack); the comparisons live in verify_datacatalog.py, creating partitions in lambdas.adapters.glue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.clients import client
from lambdas.domain import keys


@dataclass
class S3Partitions:
    """Partitions found under the documents prefix: values -> number of objects; plus keys off the layout."""

    partitions: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    unexpected_keys: list[str] = field(default_factory=list)


def account_id() -> str:
    return client("sts").get_caller_identity()["Account"]


def get_database(name: str) -> dict[str, Any] | None:
    try:
        return client("glue").get_database(Name=name)["Database"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise


def get_table(database: str, table: str) -> dict[str, Any] | None:
    try:
        return client("glue").get_table(DatabaseName=database, Name=table)["Table"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise


def get_partitions(database: str, table: str) -> list[dict[str, Any]]:
    paginator = client("glue").get_paginator("get_partitions")
    return [
        partition
        for page in paginator.paginate(DatabaseName=database, TableName=table)
        for partition in page.get("Partitions", [])
    ]


def bucket_exists(bucket: str) -> bool:
    try:
        client("s3").head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False


def s3_partitions(bucket: str, prefix: str) -> S3Partitions:
    """Every object under ``prefix``, grouped by the partition its key names (ids decoded)."""
    found = S3Partitions()
    paginator = client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            try:
                parsed = keys.parse_object_key(item["Key"], prefix)
            except keys.InvalidObjectKeyError:
                found.unexpected_keys.append(item["Key"])
                continue
            found.partitions[parsed.partition] = found.partitions.get(parsed.partition, 0) + 1
    return found
