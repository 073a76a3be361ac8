"""A change of the purchases table -> the JSON document of that change (docs/json-contract.md). Pure: no boto3.

The domain sees a plain :class:`StreamChange` (lambdas/stream/changes.py converts Powertools'
``DynamoDBRecord`` into one; images are deserialized there, numbers are ``Decimal``). INSERT and MODIFY use
the new image, REMOVE the old one. The image is read as a :class:`lambdas.domain.items.PurchaseItem` under the
minimal item contract (docs/item-schema.md), so items written by other producers are exported too. Money is
exact: ``Decimal`` arithmetic throughout and numbers serialized from their decimal text, never through
``float`` (99.99 x 2 is written 199.98).

Anything that breaks the contract raises ``MalformedRecordError`` naming the record, the attribute and what is
wrong: such a record can never be exported (docs/operations.md, "Failure semantics").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lambdas.domain import keys
from lambdas.domain.items import ItemContractError, PurchaseItem

EVENT_SOURCE = "aws:dynamodb"


class MalformedRecordError(ValueError):
    """A stream record that can never become a document (what, where, why in the message)."""


@dataclass(frozen=True)
class StreamChange:
    """One change of a purchase, as the domain sees it (no Powertools, no DynamoDB JSON)."""

    event_name: str  # INSERT | MODIFY | REMOVE
    sequence_number: str  # digits (21 to 40 of them)
    approximate_creation_time: datetime  # aware, UTC
    image: Mapping[str, Any]  # NewImage (INSERT, MODIFY) or OldImage (REMOVE), deserialized
    event_id: str | None = None
    event_source: str | None = None
    aws_region: str | None = None

    @property
    def where(self) -> str:
        image = "OldImage" if self.event_name == "REMOVE" else "NewImage"
        return f"stream record {self.event_name} eventID={self.event_id} sequence={self.sequence_number} {image}"


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


def build_export(change: StreamChange, context: ExportContext, processed_at: datetime) -> ExportDocument:
    """The document, its S3 key and partition for one change."""
    document = build_document(change, context, processed_at)
    try:
        key = keys.object_key(
            event_name=change.event_name,
            tenant_id=document["tenant_id"],
            compra_id=document["compra_id"],
            fecha=document["fecha"],
            approximate_creation_time=change.approximate_creation_time,
            sequence_number=change.sequence_number,
            prefix=context.compras_prefix,
        )
    except ValueError as exc:
        raise MalformedRecordError(f"{change.where}: cannot build the object key: {exc}") from exc
    return ExportDocument(
        key=key,
        body=to_json_line(document),
        partition=keys.partition_values(document["tenant_id"], document["fecha"]),
        sequence_number=change.sequence_number,
        document=document,
    )


def build_document(change: StreamChange, context: ExportContext, processed_at: datetime) -> dict[str, Any]:
    """The JSON document (as Python values) of one INSERT / MODIFY / REMOVE change."""
    if change.event_name not in keys.EVENT_NAMES:
        raise MalformedRecordError(
            f"{change.where}: eventName {change.event_name!r} is not one of {', '.join(keys.EVENT_NAMES)}"
        )
    try:
        purchase = PurchaseItem.from_image(change.image)
    except ItemContractError as exc:
        raise MalformedRecordError(f"{change.where}: {exc}") from None
    totals = purchase.totals()
    return {
        "compra_id": purchase.compra_id,
        "user_id": purchase.user_id,
        "tenant_id": purchase.tenant_id,
        "fecha": purchase.fecha,
        "productos": [
            {
                "codigo": p.codigo,
                "nombre": p.nombre,
                "categoria": p.categoria,
                "precio_unitario": p.precio_unitario,
                "cantidad": p.cantidad,
                "ticket_id": p.ticket_id,
            }
            for p in purchase.productos
        ],
        "resumen": {
            "total_productos": totals.total_productos,
            "total_cantidad": totals.total_cantidad,
            "total_precio": totals.total_precio,
            "moneda": purchase.moneda or context.default_currency,
        },
        "metadata": {
            "event_name": change.event_name,
            "event_source": change.event_source or EVENT_SOURCE,
            "aws_region": change.aws_region,
            "processed_at": _iso(processed_at),
            "processed_by": context.processed_by,
            "stage": context.stage,
            "event_id": change.event_id,
            "sequence_number": change.sequence_number,
            "approximate_creation_time": _iso(change.approximate_creation_time),
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
