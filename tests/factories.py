"""Builders of test data shared by several test modules: the domain's typed purchase item
(lambdas/domain/items.py) as the table stores it (``to_item()``), and the ingestion's tuning as config/pipeline.yml
sets it (the code has no defaults of its own: ``write_policy``, ``INGEST_LIMITS``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pipeline_config
from lambdas.adapters.dynamodb import WritePolicy
from lambdas.domain.items import Producto, PurchaseItem

_INGESTION = pipeline_config.function_settings("ingestion")
# purchases.ingest's report and grouping limits (functions.ingestion maxReportedRejections, groupingMemoryMB).
INGEST_LIMITS = {
    "max_listed": int(_INGESTION["maxReportedRejections"]),
    "memory_budget_bytes": int(_INGESTION["groupingMemoryMB"]) * 1024 * 1024,
}


def write_policy(**changes: Any) -> WritePolicy:
    """The ingestion's write policy as config/pipeline.yml sets it (functions.ingestion), with ``changes``."""
    return WritePolicy(
        **{
            "concurrency": int(_INGESTION["writeConcurrency"]),
            "max_attempts": int(_INGESTION["maxWriteAttempts"]),
            "backoff_base_seconds": float(_INGESTION["backoffBaseSeconds"]),
            "backoff_cap_seconds": float(_INGESTION["backoffCapSeconds"]),
            **changes,
        }
    )


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
