"""lambdas/domain/items.py: the typed purchase item, its table form and the minimal contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lambdas.domain.items import ItemContractError, Producto, PurchaseItem


def purchase(**overrides) -> PurchaseItem:
    values = {
        "tenant_id": "S1",
        "compra_id": "B1",
        "fecha": "2024-03-01 10:00:00",
        "productos": (
            Producto("P1", 2, "Leche", "lacteos", Decimal("1.5"), "T1"),
            Producto("P2", 1, "Pan", None, None, None),
        ),
        "user_id": "u1",
        "source": {"source_bucket": "b", "ingested_at": "2026-01-01T00:00:00Z"},
    }
    values.update(overrides)
    return PurchaseItem(**values)


def test_to_item_is_the_table_form_and_reads_back_the_same():
    item = purchase().to_item()
    assert item == {
        "tenant_id": "S1",
        "compra_id": "B1",
        "fecha": "2024-03-01 10:00:00",
        "productos": [
            {
                "codigo": "P1",
                "nombre": "Leche",
                "categoria": "lacteos",
                "cantidad": 2,
                "precio_unitario": Decimal("1.5"),
                "ticket_id": "T1",
            },
            {"codigo": "P2", "nombre": "Pan", "cantidad": 1, "precio_unitario": None},
        ],
        "user_id": "u1",
        "source_bucket": "b",
        "ingested_at": "2026-01-01T00:00:00Z",
    }
    assert PurchaseItem.from_image(item) == purchase(source={})


def test_totals_are_exact():
    totals = purchase(
        productos=(Producto("A", 3, precio_unitario=Decimal("0.1")), Producto("B", 1, precio_unitario=Decimal("0.2")))
    ).totals()
    assert (totals.total_productos, totals.total_cantidad, totals.total_precio) == (2, 4, Decimal("0.5"))
    assert purchase(productos=(Producto("A", 1),)).totals().total_precio is None


def test_minimal_item_with_numbers_as_dynamodb_returns_them():
    image = {
        "tenant_id": "t",
        "compra_id": "c",
        "fecha": "2024-01-15T10:30:00-03:00",
        "productos": [{"codigo": "X", "cantidad": Decimal(2), "precio_unitario": Decimal("3")}],
    }
    item = PurchaseItem.from_image(image)
    assert item.fecha == "2024-01-15 13:30:00"
    assert item.productos == (Producto("X", 2, precio_unitario=Decimal("3")),)
    assert (item.user_id, item.moneda) == (None, None)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"compra_id": "c", "fecha": "2024-01-01 00:00:00", "productos": []}, "'tenant_id' is missing"),
        ({"tenant_id": "t", "compra_id": "c", "fecha": "2024-01-01 00:00:00"}, "'productos' must be a list"),
        ({"tenant_id": "t", "compra_id": "c", "fecha": 5, "productos": []}, "'fecha' must be a non-empty string"),
        (
            {
                "tenant_id": "t",
                "compra_id": "c",
                "fecha": "2024-01-01 00:00:00",
                "productos": [{"codigo": "x", "cantidad": True}],
            },
            "'cantidad' must be an integer number > 0",
        ),
    ],
)
def test_contract_violations_name_the_attribute(image, message):
    with pytest.raises(ItemContractError, match=message):
        PurchaseItem.from_image(image)
