"""The purchase item: one typed value for what the purchases table holds (docs/item-schema.md). Pure Python.

* Ingestion builds it from ticket lines (lambdas/domain/purchases.py ``build_purchase``) and hands the table
  :meth:`PurchaseItem.to_item` (a plain dict of str/int/Decimal/list/dict/None).
* The stream export reads it back from a stream image with :meth:`PurchaseItem.from_image`, which enforces the
  **minimal item contract**: the table is an interface, and other producers (apps, the console, a migration)
  may write the original design's item — ``compra_id, tenant_id, fecha, productos[{codigo, nombre,
  precio_unitario, cantidad}]`` and optionally ``user_id``. Everything only our ingestion adds (``ticket_id``,
  ``categoria``, ``moneda``, the ``source_*`` attributes) is optional; documented defaults apply.
* The same limits as ingestion (lambdas/domain/limits.py) decide what can be exported: values that the Glue
  table's types or the export key cannot hold make the image violate the contract, with a reason naming the
  attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from lambdas.domain import limits
from lambdas.domain.tickets import normalise_timestamp

# Enough digits for any sum of DynamoDB numbers (38 significant digits each) without rounding.
_MONEY = Context(prec=80)


class ItemContractError(ValueError):
    """An item (image) that does not follow the minimal item contract; the message names the attribute."""


@dataclass(frozen=True, slots=True)
class Producto:
    """One line of ``productos``. ``codigo`` and ``cantidad`` are required; the rest may be unknown (None)."""

    codigo: str
    cantidad: int
    nombre: str | None = None
    categoria: str | None = None
    precio_unitario: Decimal | None = None
    ticket_id: str | None = None

    def to_item(self) -> dict[str, Any]:
        value: dict[str, Any] = {"codigo": self.codigo}
        if self.nombre is not None:
            value["nombre"] = self.nombre
        if self.categoria is not None:
            value["categoria"] = self.categoria
        value["cantidad"] = self.cantidad
        value["precio_unitario"] = self.precio_unitario  # NULL when unknown
        if self.ticket_id is not None:
            value["ticket_id"] = self.ticket_id
        return value


@dataclass(frozen=True)
class Totals:
    total_productos: int
    total_cantidad: int
    total_precio: Decimal | None  # None when no line has a known price


@dataclass(frozen=True)
class PurchaseItem:
    """One purchase of the table. ``fecha`` is ``YYYY-MM-DD HH:MM:SS`` UTC; ``source`` holds the attributes that
    tell where an ingested purchase comes from (``source_bucket``, ``source_key``, ``ingested_at``, …), written
    flat into the item."""

    tenant_id: str
    compra_id: str
    fecha: str
    productos: tuple[Producto, ...]
    user_id: str | None = None
    moneda: str | None = None
    source: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.compra_id)

    def totals(self) -> Totals:
        """Exact totals (Decimal arithmetic, never float)."""
        total_precio = None
        for product in self.productos:
            if product.precio_unitario is not None:
                line = _MONEY.multiply(product.precio_unitario, Decimal(product.cantidad))
                total_precio = line if total_precio is None else _MONEY.add(total_precio, line)
        return Totals(len(self.productos), sum(p.cantidad for p in self.productos), total_precio)

    def problems(self) -> list[str]:
        """What would keep this purchase out of the Glue table (empty: nothing)."""
        totals = self.totals()
        problems = limits.id_problems(self.tenant_id, self.compra_id)
        problems += limits.total_problems(totals.total_cantidad, totals.total_precio, totals.total_productos)
        return problems

    def to_item(self) -> dict[str, Any]:
        """The item as the purchases table stores it (what PurchaseSink.put receives)."""
        item: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "compra_id": self.compra_id,
            "fecha": self.fecha,
            "productos": [p.to_item() for p in self.productos],
        }
        if self.user_id is not None:
            item["user_id"] = self.user_id
        if self.moneda is not None:
            item["moneda"] = self.moneda
        item.update(self.source)
        return item

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> PurchaseItem:
        """Read a (deserialized) item image under the minimal contract; raises ItemContractError.

        ``fecha`` may be any timestamp of the CSV grammar (docs/csv-contract.md); it is normalised to
        ``YYYY-MM-DD HH:MM:SS`` UTC as ingestion does. Attributes outside the contract are ignored.
        """
        tenant_id = _required_str(image, "tenant_id")
        compra_id = _required_str(image, "compra_id")
        fecha_value = _required_str(image, "fecha")
        try:
            fecha = normalise_timestamp(fecha_value)
        except ValueError as exc:
            raise ItemContractError(
                f"attribute 'fecha' {fecha_value[:40]!r} {exc} (ingestion writes YYYY-MM-DD HH:MM:SS, UTC)"
            ) from None
        raw_products = image.get("productos")
        if not isinstance(raw_products, list):
            raise ItemContractError(f"attribute 'productos' must be a list of maps, got {type_name(raw_products)}")
        productos = tuple(_producto(value, f"productos[{index}]") for index, value in enumerate(raw_products))
        item = cls(
            tenant_id=tenant_id,
            compra_id=compra_id,
            fecha=fecha,
            productos=productos,
            user_id=_optional_str(image, "user_id"),
            moneda=_optional_str(image, "moneda"),
        )
        problems = item.problems()
        if problems:
            raise ItemContractError("the purchase cannot be exported: " + "; ".join(problems))
        return item


def _producto(value: Any, where: str) -> Producto:
    if not isinstance(value, Mapping):
        raise ItemContractError(f"{where}: must be a map, got {type_name(value)}")
    codigo = _required_str(value, "codigo", where)
    cantidad = value.get("cantidad")
    if not _is_integral(cantidad) or cantidad <= 0:
        raise ItemContractError(f"{where}: attribute 'cantidad' must be an integer number > 0, got {cantidad!r}")
    if cantidad > limits.MAX_QUANTITY:
        raise ItemContractError(
            f"{where}: attribute 'cantidad' {cantidad} is larger than {limits.MAX_QUANTITY} "
            f"(Glue {limits.GLUE_TYPES['productos.cantidad']})"
        )
    precio = value.get("precio_unitario")
    if precio is not None:
        if isinstance(precio, bool) or not isinstance(precio, Decimal | int):
            raise ItemContractError(
                f"{where}: attribute 'precio_unitario' must be a number >= 0 or NULL, "
                f"got {type_name(precio)} {precio!r}"
            )
        precio = Decimal(precio)
        problem = limits.price_problem(precio)
        if problem is not None:
            raise ItemContractError(
                f"{where}: attribute 'precio_unitario' {precio!r} {problem} "
                f"(Glue {limits.GLUE_TYPES['productos.precio_unitario']}; a number >= 0 or NULL)"
            )
    return Producto(
        codigo=codigo,
        cantidad=int(cantidad),
        nombre=_optional_str(value, "nombre", where),
        categoria=_optional_str(value, "categoria", where),
        precio_unitario=precio,
        ticket_id=_optional_str(value, "ticket_id", where),
    )


def _required_str(image: Mapping[str, Any], name: str, where: str = "") -> str:
    value = image.get(name)
    if not isinstance(value, str) or value == "":
        problem = "is missing" if name not in image else f"must be a non-empty string, got {type_name(value)}"
        raise ItemContractError(f"{where + ': ' if where else ''}attribute '{name}' {problem}")
    return value


def _optional_str(image: Mapping[str, Any], name: str, where: str = "") -> str | None:
    value = image.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        prefix = f"{where}: " if where else ""
        raise ItemContractError(f"{prefix}attribute '{name}' must be a string, got {type_name(value)}")
    return value


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if not isinstance(value, Decimal):
        return False
    try:
        return value.is_finite() and value == value.to_integral_value()
    except InvalidOperation:
        return False


def type_name(value: Any) -> str:
    if isinstance(value, set | frozenset):
        kinds = {type(v).__name__ for v in value}
        return "number set" if kinds <= {"Decimal"} else "set"
    return "null" if value is None else type(value).__name__
