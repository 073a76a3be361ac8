"""local/tables.py: the plain-text tables of the demo and the report CLI."""

from __future__ import annotations

from decimal import Decimal

from local.tables import format_table


def test_format_table_aligns_numbers_and_marks_nulls():
    text = format_table(["name", "total"], [("a", Decimal("1.5000")), ("bb", None), ("c", Decimal("12"))])
    assert text.splitlines() == ["name  total", "----  -----", "a      1.50", "bb        ∅", "c        12"]
    assert format_table(["x"], []).endswith("(no rows)")
    many = format_table(["x"], [(i,) for i in range(20)], max_rows=3)
    assert many.splitlines()[-1] == "... 17 more rows"
