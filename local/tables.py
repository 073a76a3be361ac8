"""Plain-text result tables, shared by the demo (local/demo.py) and the report CLI (local/report.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


def format_value(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01')):f}" if value.as_tuple().exponent < 0 else f"{value:f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def format_table(columns: list[str], rows: list[tuple[Any, ...]], max_rows: int = 15, max_width: int = 28) -> str:
    """A plain-text table (first ``max_rows`` rows), numbers right-aligned."""
    shown = [[format_value(v) for v in row] for row in rows[:max_rows]]
    cells = [[c[: max_width - 1] + "…" if len(c) > max_width else c for c in row] for row in shown]
    widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
    numeric = [
        all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows[:max_rows])
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    if len(rows) > max_rows:
        out.append(f"... {len(rows) - max_rows} more rows")
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)
