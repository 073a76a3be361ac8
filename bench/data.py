"""Benchmark input: ticket CSVs from local.sample_data in three row orders, cached under bench/out/data/.

Orders, all three the same lines (the same purchases) in another order: ``sorted`` (each basket's lines together,
the usual export), ``interleaved`` (a time-ordered export of many tills: 2,000 baskets open at once, each next
line taken from a random open basket, so a basket's lines are spread over thousands of rows), ``shuffled`` (a
random permutation).
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from local.sample_data import SampleConfig, generate_rows, write_csv

OUT = Path(__file__).resolve().parent / "out" / "data"
STORES = 10  # tenants
DAYS = 30  # purchase dates spread over this many days (Glue partitions per tenant)
ORDERS = ("sorted", "interleaved", "shuffled")
INTERLEAVED_OPEN_BASKETS = 2000


@dataclass(frozen=True)
class CsvFacts:
    """What a correct load of the file must produce."""

    path: Path
    rows: int
    purchases: int  # distinct (store, basket_id): the items our ingestion writes
    row_keys: int  # distinct (store, ticket_id): the items a row-per-item loader writes
    size_bytes: int


def facts(path: Path) -> CsvFacts:
    purchases: set[tuple[str, str]] = set()
    row_keys: set[tuple[str, str]] = set()
    rows = 0
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            rows += 1
            purchases.add((row["store"], row["basket_id"]))
            row_keys.add((row["store"], row["ticket_id"]))
    return CsvFacts(path, rows, len(purchases), len(row_keys), path.stat().st_size)


def tickets_csv(rows: int, seed: int, out: Path = OUT, order: str = "sorted") -> CsvFacts:
    """The CSV of `rows` valid rows for `seed` in `order`, generated once (same arguments, same bytes)."""
    return facts(csv_path(rows, seed, out, order))


def csv_path(rows: int, seed: int, out: Path = OUT, order: str = "sorted") -> Path:
    if order not in ORDERS:
        raise ValueError(f"unknown row order {order!r}: one of {', '.join(ORDERS)}")
    path = out / f"tickets_{rows}_{order}_seed{seed}.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = SampleConfig(rows=rows, seed=seed, stores=STORES, days=DAYS, sorted_by_basket=True)
    lines: Iterable[dict[str, str]] = generate_rows(cfg)
    if order == "interleaved":
        lines = interleave(lines, INTERLEAVED_OPEN_BASKETS, random.Random(seed))
    elif order == "shuffled":
        materialised = list(lines)
        random.Random(seed).shuffle(materialised)
        lines = materialised
    tmp = path.with_suffix(".tmp")
    write_csv(lines, tmp, cfg.columns())
    tmp.replace(path)
    return path


def interleave(
    sorted_rows: Iterable[dict[str, str]], open_baskets: int, rng: random.Random
) -> Iterator[dict[str, str]]:
    """The lines of basket-sorted rows as tills writing at the same time would: `open_baskets` baskets open at
    once, each next line taken from a random open one, a finished basket replaced by the next (memory: the open
    baskets only)."""
    baskets = (list(lines) for _, lines in itertools.groupby(sorted_rows, key=lambda r: (r["store"], r["basket_id"])))
    opened: list[list[dict[str, str]]] = []
    while True:
        while len(opened) < open_baskets and (basket := next(baskets, None)) is not None:
            basket.reverse()  # pop() from the end = the basket's lines in their order
            opened.append(basket)
        if not opened:
            return
        index = rng.randrange(len(opened))
        basket = opened[index]
        yield basket.pop()
        if not basket:
            opened[index] = opened[-1]
            opened.pop()
