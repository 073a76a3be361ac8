"""Benchmark input: ticket CSVs from local.sample_data (ordered by basket), cached under bench/out/data/."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from local.sample_data import SampleConfig, generate_rows, write_csv

OUT = Path(__file__).resolve().parent / "out" / "data"
STORES = 10  # tenants
DAYS = 30  # purchase dates spread over this many days (Glue partitions per tenant)


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


def tickets_csv(rows: int, seed: int, out: Path = OUT) -> CsvFacts:
    """The CSV of `rows` valid rows for `seed`, generated once (same seed, same bytes)."""
    path = out / f"tickets_{rows}_seed{seed}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg = SampleConfig(rows=rows, seed=seed, stores=STORES, days=DAYS, sorted_by_basket=True)
        tmp = path.with_suffix(".tmp")
        write_csv(generate_rows(cfg), tmp, cfg.columns())
        tmp.replace(path)
    return facts(path)
