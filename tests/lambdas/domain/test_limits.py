"""lambdas/domain/limits.py: every limit derived from its destination, and the destinations agree with it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import pipeline_config as config
from lambdas.domain import keys, limits


def _glue_types_of_config() -> dict[str, str]:
    """`productos.cantidad` -> `int` ... from config/pipeline.yml catalog.columns (struct fields flattened)."""
    found: dict[str, str] = {}
    for column in config.catalog()["columns"]:
        kind = column["Type"]
        inner = kind.removeprefix("array<").removeprefix("struct<").rstrip(">").removeprefix("struct<")
        if inner == kind:
            found[column["Name"]] = kind
            continue
        # split "a:int,b:decimal(18,4),…" at commas outside parentheses
        depth, field, parts = 0, "", []
        for char in inner:
            depth += char == "("
            depth -= char == ")"
            if char == "," and depth == 0:
                parts.append(field)
                field = ""
            else:
                field += char
        parts.append(field)
        for part in parts:
            name, _, sub = part.partition(":")
            found[f"{column['Name']}.{name}"] = sub
    return found


def test_glue_types_are_those_of_the_catalog_in_config():
    declared = _glue_types_of_config()
    assert {name: declared[name] for name in limits.GLUE_TYPES} == limits.GLUE_TYPES


def test_bounds_follow_from_the_glue_types():
    assert limits.MAX_QUANTITY == limits.MAX_TOTAL_QUANTITY == 2**31 - 1
    assert (limits.PRICE_MAX_INTEGER_DIGITS, limits.PRICE_MAX_DECIMALS) == (14, 4)
    assert Decimal("99999999999999.9999") == limits.MAX_TOTAL_PRICE


def test_the_configured_compras_prefix_fits_the_prefix_the_budget_assumes():
    prefix = config.prefixes()["compras"]
    assert len(prefix.encode("utf-8")) <= limits.MAX_PREFIX_BYTES


@pytest.mark.parametrize("event", limits.EVENT_NAMES)
def test_ids_at_the_budget_give_a_key_of_at_most_1024_bytes_with_the_longest_prefix_and_sequence(event):
    prefix = "p" * (limits.MAX_PREFIX_BYTES - 1) + "/"
    tenant = "ñ" * 100  # 600 encoded characters
    compra = "B" * (limits.ID_BUDGET - limits.encoded_length(tenant))
    assert limits.id_problems(tenant, compra) == []
    key = keys.object_key(
        event_name=event,
        tenant_id=tenant,
        compra_id=compra,
        fecha="2024-03-01 10:00:00",
        approximate_creation_time=datetime(2024, 3, 1, tzinfo=UTC),
        sequence_number="9" * limits.MAX_SEQUENCE_NUMBER_DIGITS,
        prefix=prefix,
    )
    assert len(key.encode("utf-8")) == limits.S3_MAX_KEY_BYTES
    assert limits.id_problems(tenant, compra + "B") != []


@pytest.mark.parametrize("value", ["abc-_9", "a/b", "..", "Tienda Ñ", "🛒", "~", "x y\u200b"])
def test_encoded_length_is_the_length_of_the_encoding(value):
    assert limits.encoded_length(value) == len(keys.encode_id(value))


def test_store_over_the_glue_partition_value_limit():
    assert limits.id_problems("S" * 1024, "B") == [] or "Glue" not in " ".join(limits.id_problems("S" * 1024, "B"))
    [problem, *_] = limits.id_problems("é" * 513, "B")  # 1,026 bytes
    assert "Glue partition value" in problem


def test_totals():
    assert limits.total_problems(2**31 - 1, Decimal("99999999999999.9999"), 3) == []
    [quantity] = limits.total_problems(2**31, None, 2)
    assert "total_cantidad (int) holds at most 2,147,483,647" in quantity
    [price] = limits.total_problems(1, Decimal("100000000000000"), 1)
    assert "total_precio (decimal(18,4))" in price


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        (Decimal("0"), None),
        (Decimal("99999999999999.9999"), None),
        (Decimal("100000000000000"), "integer digits"),
        (Decimal("1.23456"), "decimal places"),
        (Decimal("1.50000"), None),
        (Decimal("-1"), ">= 0"),
        (Decimal("NaN"), ">= 0"),
    ],
)
def test_price_problem(price, problem):
    found = limits.price_problem(price)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    "name",
    ["tickets.csv", "a/" * 400 + "x.csv", "ñ" * 334 + ".csv", "x" * 1012 + ".csv"],
)
def test_report_key_always_fits_and_keeps_short_names(name):
    upload = "uploads/" + name
    if len(upload.encode()) > limits.S3_MAX_KEY_BYTES:
        pytest.skip("not a possible S3 key")
    key = limits.report_key(upload, "uploads/", "ingest-reports/")
    assert len(key.encode("utf-8")) <= limits.S3_MAX_KEY_BYTES
    assert key.startswith("ingest-reports/") and key.endswith(".report.json")
    if len(f"ingest-reports/{name}.report.json".encode()) <= limits.S3_MAX_KEY_BYTES:
        assert key == f"ingest-reports/{name}.report.json"
    else:
        assert "~" in key
        other = limits.report_key(upload[:-5] + "y.csv", "uploads/", "ingest-reports/")
        assert other != key  # distinct uploads, distinct reports
