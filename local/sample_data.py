"""Realistic, reproducible tickets CSV for the demo, the tests and the benchmarks.

Stores sell from a catalogue of products (categories, prices with cents); each basket (a purchase) has a
store, a basket id, an optional customer, a time on one of the days of the period and 1..12 lines with
skewed popularity and a few products that tend to be bought together (so the product-pair query has
something to find). The same seed always gives the same bytes.

    python -m local.sample_data --rows 500 --seed 7 --out tickets.csv [--sorted-by-basket]
        [--stores 4] [--days 14] [--start 2024-05-01] [--bad-rows 3] [--omit user_id --omit currency]
        [--correction corrections.csv --correction-baskets 5]

Row order: by default lines of a few concurrently open baskets are interleaved (several tills writing
to one export), so a basket is split across the file; ``--sorted-by-basket`` writes every basket's lines
together (the usual export order, and what bounded-memory ingestion is tuned for).

Columns: the required ones of the CSV contract (ticket_id, product, basket_id, timestamp, category,
quantity, store) plus the optional product_code, unit_price, user_id, currency (``--omit`` drops some).
``--bad-rows K`` adds K rows that break one rule each (quantity, price, timestamp, empty id) so a demo
shows rejections; they never share a basket with valid rows.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_COLUMNS = ("ticket_id", "store", "basket_id", "timestamp", "product", "category", "quantity")
OPTIONAL_COLUMNS = ("product_code", "unit_price", "user_id", "currency")
ALL_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)

# (code, name, category, price): a small supermarket catalogue.
CATALOGUE: tuple[tuple[str, str, str, str], ...] = (
    ("PAN-001", "Pan de barra", "Panadería", "0.95"),
    ("PAN-002", "Pan integral", "Panadería", "1.80"),
    ("PAN-003", "Croissant", "Panadería", "1.20"),
    ("PAN-004", "Magdalenas 12 ud", "Panadería", "2.35"),
    ("LAC-001", "Leche entera 1 L", "Lácteos", "1.05"),
    ("LAC-002", "Leche semidesnatada 1 L", "Lácteos", "0.99"),
    ("LAC-003", "Yogur natural 4 ud", "Lácteos", "1.49"),
    ("LAC-004", "Queso manchego 250 g", "Lácteos", "4.75"),
    ("LAC-005", "Mantequilla 250 g", "Lácteos", "2.60"),
    ("FRU-001", "Plátano de Canarias 1 kg", "Frutas y verduras", "2.29"),
    ("FRU-002", "Manzana golden 1 kg", "Frutas y verduras", "1.99"),
    ("FRU-003", "Tomate pera 1 kg", "Frutas y verduras", "2.15"),
    ("FRU-004", "Naranja 2 kg", "Frutas y verduras", "3.49"),
    ("FRU-005", "Lechuga iceberg", "Frutas y verduras", "0.89"),
    ("CAR-001", "Pechuga de pollo 500 g", "Carnicería", "4.95"),
    ("CAR-002", "Carne picada 400 g", "Carnicería", "3.80"),
    ("CAR-003", "Jamón serrano 100 g", "Carnicería", "2.99"),
    ("BEB-001", "Agua mineral 1,5 L", "Bebidas", "0.45"),
    ("BEB-002", "Zumo de naranja 1 L", "Bebidas", "1.75"),
    ("BEB-003", "Refresco de cola 2 L", "Bebidas", "1.99"),
    ("BEB-004", "Cerveza 6x33 cl", "Bebidas", "4.20"),
    ("BEB-005", "Vino tinto Rioja", "Bebidas", "6.90"),
    ("BEB-006", "Café molido 250 g", "Bebidas", "3.15"),
    ("DES-001", "Cereales 500 g", "Desayuno", "2.85"),
    ("DES-002", "Galletas María", "Desayuno", "1.25"),
    ("DES-003", "Mermelada de fresa", "Desayuno", "1.95"),
    ("DES-004", "Cacao soluble 400 g", "Desayuno", "3.40"),
    ("DES-005", "Aceite de oliva virgen extra 1 L", "Despensa", "8.99"),
    ("DES-006", "Arroz redondo 1 kg", "Despensa", "1.39"),
    ("DES-007", "Pasta espagueti 500 g", "Despensa", "0.99"),
    ("DES-008", "Tomate frito 400 g", "Despensa", "0.85"),
    ("SNK-001", "Patatas fritas 150 g", "Snacks", "1.59"),
    ("SNK-002", "Chocolate con leche", "Snacks", "1.35"),
    ("SNK-003", "Frutos secos 200 g", "Snacks", "2.79"),
    ("LIM-001", "Detergente 30 lavados", "Limpieza", "7.50"),
    ("LIM-002", "Papel higiénico 12 rollos", "Limpieza", "4.99"),
    ("LIM-003", "Lavavajillas 750 ml", "Limpieza", "1.89"),
    ("HIG-001", "Champú 400 ml", "Higiene", "3.25"),
    ("HIG-002", "Gel de ducha 750 ml", "Higiene", "2.49"),
    ("HIG-003", "Pasta de dientes", "Higiene", "1.99"),
)

# Products that go together: when the first is in a basket, the second joins it with this probability.
AFFINITIES: tuple[tuple[str, str, float], ...] = (
    ("PAN-001", "LAC-005", 0.45),
    ("DES-007", "DES-008", 0.6),
    ("BEB-004", "SNK-001", 0.5),
    ("DES-001", "LAC-001", 0.55),
    ("BEB-006", "LAC-002", 0.4),
    ("CAR-002", "DES-008", 0.35),
)

STORE_NAMES = (
    "madrid-centro",
    "barcelona-gracia",
    "valencia-ruzafa",
    "sevilla-triana",
    "bilbao-abando",
    "zaragoza-delicias",
    "malaga-soho",
    "a-coruna-riazor",
)


@dataclass(frozen=True)
class SampleConfig:
    rows: int = 500
    seed: int = 7
    stores: int = 4
    days: int = 14
    start: dt.date = dt.date(2024, 5, 1)
    sorted_by_basket: bool = False
    bad_rows: int = 0
    omit: tuple[str, ...] = ()
    open_baskets: int = 8  # baskets interleaved at a time when not sorted
    currency: str = "EUR"

    def columns(self) -> tuple[str, ...]:
        for column in self.omit:
            if column not in OPTIONAL_COLUMNS:
                raise ValueError(f"--omit {column!r}: only optional columns can be omitted {OPTIONAL_COLUMNS}")
        return tuple(c for c in ALL_COLUMNS if c not in self.omit)


@dataclass
class _Basket:
    store: str
    basket_id: str
    user_id: str
    when: dt.datetime
    lines: list[dict[str, str]] = field(default_factory=list)


def _store_names(count: int) -> list[str]:
    names = list(STORE_NAMES[:count])
    names += [f"tienda-{i:03d}" for i in range(len(names) + 1, count + 1)]
    return names


def _basket_size(rng: random.Random) -> int:
    # Mostly small baskets, a tail of big weekly shops.
    return min(12, 1 + int(rng.expovariate(1 / 3.0)))


def _quantity(rng: random.Random) -> int:
    return rng.choices((1, 2, 3, 4, 6), weights=(60, 22, 9, 6, 3))[0]


class _Generator:
    def __init__(self, cfg: SampleConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)  # noqa: S311 - reproducible sample data, not security
        self.stores = _store_names(cfg.stores)
        # Zipf-like popularity, a fixed permutation per seed.
        order = list(range(len(CATALOGUE)))
        self.rng.shuffle(order)
        self.weights = [0.0] * len(CATALOGUE)
        for rank, index in enumerate(order, start=1):
            self.weights[index] = 1.0 / rank**0.8
        self.by_code = {p[0]: p for p in CATALOGUE}
        self.customers = [f"cliente-{i:05d}" for i in range(1, max(20, cfg.rows // 6) + 1)]
        self.basket_seq = dict.fromkeys(self.stores, 0)
        self.ticket_seq = 0

    def basket(self) -> _Basket:
        rng = self.rng
        store = rng.choice(self.stores)
        self.basket_seq[store] += 1
        day = self.cfg.start + dt.timedelta(days=rng.randrange(self.cfg.days))
        seconds = rng.randrange(8 * 3600, 22 * 3600)
        when = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
        user = rng.choice(self.customers) if rng.random() < 0.7 else ""
        basket = _Basket(store, f"B{self.basket_seq[store]:06d}", user, when)
        codes: list[str] = []
        for _ in range(_basket_size(rng)):
            code = rng.choices(CATALOGUE, weights=self.weights)[0][0]
            if code not in codes:
                codes.append(code)
            for first, second, probability in AFFINITIES:
                if code == first and second not in codes and rng.random() < probability:
                    codes.append(second)
        for offset, code in enumerate(codes):
            basket.lines.append(self.line(basket, code, offset))
        return basket

    def line(self, basket: _Basket, code: str, offset: int) -> dict[str, str]:
        _, name, category, price = self.by_code[code]
        self.ticket_seq += 1
        when = basket.when + dt.timedelta(seconds=offset * self.rng.randrange(1, 20))
        # Most exports write "YYYY-MM-DD HH:MM:SS"; some tills write ISO 8601 in UTC.
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ") if self.rng.random() < 0.1 else when.strftime("%Y-%m-%d %H:%M:%S")
        return {
            "ticket_id": f"T{self.ticket_seq:08d}",
            "store": basket.store,
            "basket_id": basket.basket_id,
            "timestamp": stamp,
            "product": name,
            "category": category,
            "quantity": str(_quantity(self.rng)),
            "product_code": code,
            "unit_price": price,
            "user_id": basket.user_id,
            "currency": self.cfg.currency,
        }

    def bad_row(self, number: int) -> dict[str, str]:
        """One row that breaks one rule; its basket id is its own (never mixes with valid rows)."""
        self.ticket_seq += 1
        row = {
            "ticket_id": f"T{self.ticket_seq:08d}",
            "store": self.rng.choice(self.stores),
            "basket_id": f"BAD{number:04d}",
            "timestamp": f"{self.cfg.start.isoformat()} 12:00:00",
            "product": "Pan de barra",
            "category": "Panadería",
            "quantity": "1",
            "product_code": "PAN-001",
            "unit_price": "0.95",
            "user_id": "",
            "currency": self.cfg.currency,
        }
        fault = number % 5
        if fault == 0:
            row["quantity"] = "0"
        elif fault == 1:
            row["quantity"] = "dos"
        elif fault == 2:
            row["timestamp"] = "31/02/2024 25:61"
        elif fault == 3:
            row["unit_price"] = "-1.50"
        else:
            row["ticket_id"] = ""
        return row


def generate_rows(cfg: SampleConfig) -> Iterator[dict[str, str]]:
    """Yield exactly ``cfg.rows`` valid rows (the last basket may be cut short) plus ``cfg.bad_rows`` bad ones."""
    gen = _Generator(cfg)
    bad_positions = set(gen.rng.sample(range(cfg.rows + cfg.bad_rows), cfg.bad_rows)) if cfg.bad_rows else set()
    emitted = 0
    bad_emitted = 0
    position = 0
    open_baskets: list[list[dict[str, str]]] = []
    while emitted < cfg.rows:
        if position in bad_positions:
            bad_emitted += 1
            position += 1
            yield gen.bad_row(bad_emitted)
            continue
        if cfg.sorted_by_basket:
            if not open_baskets:
                open_baskets.append(gen.basket().lines)
            current = open_baskets[0]
        else:
            while len(open_baskets) < cfg.open_baskets:
                open_baskets.append(gen.basket().lines)
            current = gen.rng.choice(open_baskets)
        yield current.pop(0)
        emitted += 1
        position += 1
        if not current:
            open_baskets.remove(current)
    while bad_emitted < cfg.bad_rows:  # positions beyond the last valid row
        bad_emitted += 1
        yield gen.bad_row(bad_emitted)


def correction_rows(rows: Iterable[dict[str, str]], baskets: int, seed: int) -> list[dict[str, str]]:
    """A later file that corrects ``baskets`` purchases of ``rows``: each chosen basket is restated in full
    with one change (a quantity changed, a line dropped, or a line added), with new ticket ids."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not security
    grouped: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        if row["basket_id"].startswith("BAD"):
            continue
        grouped.setdefault((row["store"], row["basket_id"]), []).append(dict(row))
    chosen = rng.sample(sorted(grouped), min(baskets, len(grouped)))
    result: list[dict[str, str]] = []
    for number, key in enumerate(chosen, start=1):
        lines = grouped[key]
        change = number % 3
        if change == 0 and len(lines) > 1:
            lines.pop(rng.randrange(len(lines)))
        elif change == 1:
            extra = dict(lines[0])
            code, name, category, price = rng.choice(
                [p for p in CATALOGUE if p[0] not in {x["product_code"] for x in lines}]
            )
            extra.update(product_code=code, product=name, category=category, unit_price=price, quantity="1")
            lines.append(extra)
        else:
            target = rng.choice(lines)
            target["quantity"] = str(int(target["quantity"]) + 1)
        for index, line in enumerate(lines, start=1):
            line["ticket_id"] = f"C{number:04d}-{index:02d}"
        result.extend(lines)
    return result


def write_csv(rows: Iterable[dict[str, str]], out: Path | str, columns: Iterable[str] = ALL_COLUMNS) -> int:
    """Write rows (only ``columns``) as UTF-8 CSV; returns the number of data rows."""
    columns = tuple(columns)
    count = 0
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
            count += 1
    return count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.sample_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="valid rows to write (default 500)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--sorted-by-basket", action="store_true", help="write each basket's lines together")
    parser.add_argument("--stores", type=int, default=4)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 5, 1), help="first day")
    parser.add_argument("--bad-rows", type=int, default=0, help="add this many invalid rows")
    parser.add_argument("--omit", action="append", default=[], choices=OPTIONAL_COLUMNS, help="drop a column")
    parser.add_argument("--correction", type=Path, help="also write a correction file for some baskets")
    parser.add_argument("--correction-baskets", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.stores < 1 or args.days < 1 or args.bad_rows < 0:
        parser.error("--rows, --stores and --days must be >= 1 and --bad-rows >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = SampleConfig(
        rows=args.rows,
        seed=args.seed,
        stores=args.stores,
        days=args.days,
        start=args.start,
        sorted_by_basket=args.sorted_by_basket,
        bad_rows=args.bad_rows,
        omit=tuple(args.omit),
    )
    columns = cfg.columns()
    if args.correction:
        rows = list(generate_rows(cfg))
        written = write_csv(rows, args.out, columns)
        fixes = correction_rows(rows, args.correction_baskets, args.seed + 1)
        write_csv(fixes, args.correction, columns)
        print(f"wrote {len(fixes)} correction rows to {args.correction}", file=sys.stderr)
    else:
        written = write_csv(generate_rows(cfg), args.out, columns)
    print(f"wrote {written} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
