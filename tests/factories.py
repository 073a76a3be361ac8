"""Builders of test data shared by several test modules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def producto(codigo: str = "P1", nombre: str = "Leche", categoria: str = "lacteos", *, cantidad: int = 2,
             precio: str | None = "99.99", ticket_id: str = "T1") -> dict[str, Any]:  # fmt: skip
    """One line of `productos` as the purchases table stores it (docs/item-schema.md)."""
    return {
        "codigo": codigo,
        "nombre": nombre,
        "categoria": categoria,
        "cantidad": Decimal(cantidad),
        "precio_unitario": None if precio is None else Decimal(precio),
        "ticket_id": ticket_id,
    }


def purchase_item(
    tenant_id: str,
    compra_id: str,
    fecha: str = "2026-03-07 10:15:00",
    *,
    productos: list[dict[str, Any]] | None = None,
    ingested_at: str = "2026-11-23T19:27:47Z",
    **overrides: Any,
) -> dict[str, Any]:
    """A purchase item of the table (the ingestion's output, the stream export's input)."""
    item = {
        "tenant_id": tenant_id,
        "compra_id": compra_id,
        "user_id": "u-1",
        "fecha": fecha,
        "productos": productos if productos is not None else [producto()],
        "source_bucket": "b",
        "source_key": "uploads/x.csv",
        "source_etag": "e",
        "ingested_at": ingested_at,
    }
    item.update(overrides)
    return item
