"""Stream layer: Powertools' ``DynamoDBRecord`` -> the domain's plain :class:`StreamChange`.

Everything about the wire format lives here (DynamoDB JSON images deserialized by Powertools'
TypeDeserializer, so numbers are ``Decimal``; the sequence number; ApproximateCreationDateTime, an epoch
number on the wire); the domain (lambdas/domain/documents.py) never sees a Powertools object. A record that
cannot be converted raises the domain's ``MalformedRecordError`` naming what is wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from lambdas.domain.documents import MalformedRecordError, StreamChange
from lambdas.domain.keys import EVENT_NAMES


def change_from_record(record: DynamoDBRecord) -> StreamChange:
    """The change one stream record describes; raises MalformedRecordError."""
    where = describe(record.raw_event)
    event_name = record.get("eventName")
    if event_name not in EVENT_NAMES:
        raise MalformedRecordError(f"{where}: eventName {event_name!r} is not one of {', '.join(EVENT_NAMES)}")
    stream = record.get("dynamodb")
    if not isinstance(stream, dict):
        raise MalformedRecordError(f"{where}: the record has no 'dynamodb' section")
    sequence = stream.get("SequenceNumber")
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise MalformedRecordError(f"{where}: dynamodb.SequenceNumber {sequence!r} is not a string of digits")
    image_name = "OldImage" if event_name == "REMOVE" else "NewImage"
    if not stream.get(image_name):
        raise MalformedRecordError(
            f"{where}: {event_name} record has no {image_name} (the table stream must be NEW_AND_OLD_IMAGES)"
        )
    try:
        image = record.dynamodb.old_image if event_name == "REMOVE" else record.dynamodb.new_image  # type: ignore[union-attr]
    except (TypeError, ValueError, ArithmeticError, AttributeError, IndexError, KeyError) as exc:
        raise MalformedRecordError(f"{where}: {image_name} is not valid DynamoDB JSON: {exc}") from exc
    return StreamChange(
        event_name=event_name,
        sequence_number=sequence,
        approximate_creation_time=_approximate_creation_time(stream.get("ApproximateCreationDateTime"), where),
        image=dict(image),
        event_id=record.get("eventID"),
        event_source=record.get("eventSource"),
        aws_region=record.get("awsRegion"),
    )


def _approximate_creation_time(value: Any, where: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MalformedRecordError(
            f"{where}: dynamodb.ApproximateCreationDateTime {value!r} is not an epoch number of seconds"
        )
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedRecordError(f"{where}: dynamodb.ApproximateCreationDateTime {value!r}: {exc}") from exc


def describe(raw: dict[str, Any]) -> str:
    stream = raw.get("dynamodb")
    sequence = stream.get("SequenceNumber") if isinstance(stream, dict) else None
    return f"stream record {raw.get('eventName')} eventID={raw.get('eventID')} sequence={sequence}"
