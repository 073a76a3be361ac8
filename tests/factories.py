"""Builders of test data shared by several test modules: the domain's typed purchase item
(lambdas/domain/items.py) as the table stores it (``to_item()``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lambdas.domain.items import Producto, PurchaseItem


def producto(codigo: str = "P1", nombre: str = "Leche", categoria: str = "lacteos", *, cantidad: int = 2,
             precio: str | None = "99.99", ticket_id: str = "T1") -> dict[str, Any]:  # fmt: skip
    """One line of `productos` as the purchases table stores it (docs/item-schema.md)."""
    return Producto(
        codigo=codigo,
        cantidad=cantidad,
        nombre=nombre,
        categoria=categoria,
        precio_unitario=None if precio is None else Decimal(precio),
        ticket_id=ticket_id,
    ).to_item()


def purchase_item(
    tenant_id: str,
    compra_id: str,
    fecha: str = "2026-03-07 10:15:00",
    *,
    productos: list[dict[str, Any]] | None = None,
    ingested_at: str = "2026-11-23T19:27:47Z",
    **overrides: Any,
) -> dict[str, Any]:
    """A purchase item of the table (the ingestion's output, the stream export's input); ``overrides`` may
    replace or add any attribute (also to build items that break the contract)."""
    item = PurchaseItem(
        tenant_id=tenant_id,
        compra_id=compra_id,
        fecha=fecha,
        productos=(),
        user_id="u-1",
        source={"source_bucket": "b", "source_key": "uploads/x.csv", "source_etag": "e", "ingested_at": ingested_at},
    ).to_item()
    item["productos"] = productos if productos is not None else [producto()]
    item.update(overrides)
    return item
