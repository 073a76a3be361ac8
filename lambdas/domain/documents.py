"""Stream record -> the JSON document of one purchase change (docs/json-contract.md). Pure: no boto3.

The record is a Powertools ``DynamoDBRecord`` (its images are deserialized with Powertools'
TypeDeserializer, so numbers are ``Decimal``). INSERT and MODIFY use the new image, REMOVE the old
one. Money is exact: ``Decimal`` arithmetic throughout and numbers serialized from their decimal
text, never through ``float`` (99.99 x 2 is written 199.98).

Anything that does not follow the item schema (docs/item-schema.md) raises ``MalformedRecordError``
naming the record, the attribute and what is wrong: such a record can never be exported, so the
handler reports it as failed and, after the capped retries, it reaches the on-failure queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from lambdas.domain import keys

EVENT_SOURCE = "aws:dynamodb"
# Enough digits for any sum of DynamoDB numbers (38 significant digits each) without rounding.
_MONEY = Context(prec=80)


class MalformedRecordError(ValueError):
    """A stream record that can never become a document (what, where, why in the message)."""


@dataclass(frozen=True)
class ExportContext:
    """What the document needs besides the record."""

    stage: str
    default_currency: str
    processed_by: str
    compras_prefix: str = "compras/"


@dataclass(frozen=True)
class ExportDocument:
    """One document ready to be written, with the key and Glue partition it belongs to."""

    key: str
    body: bytes
    partition: tuple[str, str, str, str]
    sequence_number: str
    document: dict[str, Any]


def build_export(record: DynamoDBRecord, context: ExportContext, processed_at: datetime) -> ExportDocument:
    """The document, its S3 key and partition for one stream record."""
    where = _describe(record)
    sequence_number = _sequence_number(record, where)
    document = build_document(record, context, processed_at)
    try:
        key = keys.object_key(
            event_name=document["metadata"]["event_name"],
            tenant_id=document["tenant_id"],
            compra_id=document["compra_id"],
            fecha=document["fecha"],
            approximate_creation_time=_approximate_creation_time(record, where),
            sequence_number=sequence_number,
            prefix=context.compras_prefix,
        )
    except ValueError as exc:
        raise MalformedRecordError(f"{where}: cannot build the object key: {exc}") from exc
    return ExportDocument(
        key=key,
        body=to_json_line(document),
        partition=keys.partition_values(document["tenant_id"], document["fecha"]),
        sequence_number=sequence_number,
        document=document,
    )


def build_document(record: DynamoDBRecord, context: ExportContext, processed_at: datetime) -> dict[str, Any]:
    """The JSON document (as Python values) of one INSERT / MODIFY / REMOVE record."""
    where = _describe(record)
    event_name = record.get("eventName")
    if event_name not in keys.EVENT_NAMES:
        raise MalformedRecordError(f"{where}: eventName {event_name!r} is not one of {', '.join(keys.EVENT_NAMES)}")
    stream = record.dynamodb
    if stream is None:
        raise MalformedRecordError(f"{where}: the record has no 'dynamodb' section")
    image_name = "OldImage" if event_name == "REMOVE" else "NewImage"
    if not stream.get(image_name):
        raise MalformedRecordError(
            f"{where}: {event_name} record has no {image_name} (the table stream must be NEW_AND_OLD_IMAGES)"
        )
    try:
        image = stream.old_image if event_name == "REMOVE" else stream.new_image
    except (TypeError, ValueError, ArithmeticError, AttributeError, IndexError) as exc:
        raise MalformedRecordError(f"{where}: {image_name} is not valid DynamoDB JSON: {exc}") from exc
    where = f"{where} {image_name}"

    tenant_id = _required_str(image, "tenant_id", where)
    compra_id = _required_str(image, "compra_id", where)
    fecha = _required_str(image, "fecha", where)
    try:
        keys.parse_fecha(fecha)
    except ValueError as exc:
        raise MalformedRecordError(f"{where}: attribute 'fecha': {exc}") from exc
    user_id = _optional_str(image, "user_id", where)
    moneda = _optional_str(image, "moneda", where) or context.default_currency

    raw_products = image.get("productos")
    if not isinstance(raw_products, list):
        raise MalformedRecordError(
            f"{where}: attribute 'productos' must be a list of maps, got {_type_name(raw_products)}"
        )
    productos = [_product(item, f"{where} productos[{index}]") for index, item in enumerate(raw_products)]

    total_cantidad = sum((p["cantidad"] for p in productos), 0)
    priced = [p for p in productos if p["precio_unitario"] is not None]
    total_precio = None
    if priced:
        total_precio = Decimal(0)
        for product in priced:
            line = _MONEY.multiply(product["precio_unitario"], Decimal(product["cantidad"]))
            total_precio = _MONEY.add(total_precio, line)

    return {
        "compra_id": compra_id,
        "user_id": user_id,
        "tenant_id": tenant_id,
        "fecha": fecha,
        "productos": productos,
        "resumen": {
            "total_productos": len(productos),
            "total_cantidad": total_cantidad,
            "total_precio": total_precio,
            "moneda": moneda,
        },
        "metadata": {
            "event_name": event_name,
            "event_source": record.get("eventSource") or EVENT_SOURCE,
            "aws_region": record.get("awsRegion"),
            "processed_at": _iso(processed_at),
            "processed_by": context.processed_by,
            "stage": context.stage,
            "event_id": record.get("eventID"),
            "sequence_number": _sequence_number(record, _describe(record)),
            "approximate_creation_time": _iso(_approximate_creation_time(record, _describe(record))),
        },
    }


def to_json_line(document: Any) -> bytes:
    """One line of JSON + "\\n", UTF-8. Decimals are written from their exact decimal text (never via
    float), sets as sorted lists (number sets sort numerically); NaN/Infinity are rejected."""
    return (_dump(document) + "\n").encode("utf-8")


# json.dumps(s, ensure_ascii=False) of a str is exactly this function (the C encoder json uses), without
# building a JSONEncoder per call (json.dumps does, for non-default options): a third of the document's
# serialisation cost in the profile of the stream export.
_json_str = json.encoder.encode_basestring


def _dump(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        return _json_str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as a JSON number")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not written: use Decimal for exact numbers")
    if isinstance(value, Mapping):
        items = ",".join(f"{_json_str(str(k))}:{_dump(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, set | frozenset):
        return "[" + ",".join(_dump(v) for v in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _product(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MalformedRecordError(f"{where}: must be a map, got {_type_name(item)}")
    codigo = _required_str(item, "codigo", where)
    nombre = _optional_str(item, "nombre", where)
    categoria = _optional_str(item, "categoria", where)
    ticket_id = _required_str(item, "ticket_id", where)
    cantidad = item.get("cantidad")
    if not isinstance(cantidad, Decimal) or not _is_integral(cantidad) or cantidad <= 0:
        raise MalformedRecordError(f"{where}: attribute 'cantidad' must be an integer number > 0, got {cantidad!r}")
    precio = item.get("precio_unitario")
    if precio is not None and (not isinstance(precio, Decimal) or not precio.is_finite() or precio < 0):
        raise MalformedRecordError(
            f"{where}: attribute 'precio_unitario' must be a number >= 0 or NULL, got {_type_name(precio)} {precio!r}"
        )
    return {
        "codigo": codigo,
        "nombre": nombre,
        "categoria": categoria,
        "precio_unitario": precio,
        "cantidad": int(cantidad),
        "ticket_id": ticket_id,
    }


def _required_str(image: Mapping[str, Any], name: str, where: str) -> str:
    value = image.get(name)
    if not isinstance(value, str) or value == "":
        problem = "is missing" if name not in image else f"must be a non-empty string, got {_type_name(value)}"
        raise MalformedRecordError(f"{where}: attribute '{name}' {problem}")
    return value


def _optional_str(image: Mapping[str, Any], name: str, where: str) -> str | None:
    value = image.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedRecordError(f"{where}: attribute '{name}' must be a string, got {_type_name(value)}")
    return value


def _is_integral(value: Decimal) -> bool:
    try:
        return value.is_finite() and value == value.to_integral_value()
    except InvalidOperation:
        return False


def _sequence_number(record: DynamoDBRecord, where: str) -> str:
    stream = record.get("dynamodb") or {}
    sequence = stream.get("SequenceNumber") if isinstance(stream, dict) else None
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise MalformedRecordError(f"{where}: dynamodb.SequenceNumber {sequence!r} is not a string of digits")
    return sequence


def _approximate_creation_time(record: DynamoDBRecord, where: str) -> datetime:
    stream = record.get("dynamodb") or {}
    value = stream.get("ApproximateCreationDateTime") if isinstance(stream, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MalformedRecordError(
            f"{where}: dynamodb.ApproximateCreationDateTime {value!r} is not an epoch number of seconds"
        )
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedRecordError(f"{where}: dynamodb.ApproximateCreationDateTime {value!r}: {exc}") from exc


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(record: DynamoDBRecord) -> str:
    stream = record.get("dynamodb")
    sequence = stream.get("SequenceNumber") if isinstance(stream, dict) else None
    return f"stream record {record.get('eventName')} eventID={record.get('eventID')} sequence={sequence}"


def _type_name(value: Any) -> str:
    if isinstance(value, set | frozenset):
        kinds = {type(v).__name__ for v in value}
        return "number set" if kinds <= {"Decimal"} else "set"
    return "null" if value is None else type(value).__name__
