"""The sample tickets generator: reproducible, realistic, the columns of the CSV contract, bad rows on demand."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

import pytest

from local import sample_data
from local.sample_data import SampleConfig, generate_rows


def baskets(rows):
    grouped = defaultdict(list)
    for row in rows:
        grouped[(row["store"], row["basket_id"])].append(row)
    return grouped


def test_same_seed_same_rows_other_seed_other_rows():
    assert list(generate_rows(SampleConfig(rows=300, seed=3))) == list(generate_rows(SampleConfig(rows=300, seed=3)))
    assert list(generate_rows(SampleConfig(rows=300, seed=3))) != list(generate_rows(SampleConfig(rows=300, seed=4)))


def test_rows_are_valid_and_realistic():
    cfg = SampleConfig(rows=2000, seed=1, stores=5, days=10)
    rows = list(generate_rows(cfg))
    assert len(rows) == 2000
    assert len({r["ticket_id"] for r in rows}) == 2000  # one id per ticket line
    assert len({r["store"] for r in rows}) == 5
    assert len({r["timestamp"][:10] for r in rows}) == 10
    assert len({r["category"] for r in rows}) >= 8
    for row in rows:
        assert int(row["quantity"]) >= 1
        assert Decimal(row["unit_price"]) > 0
    sizes = [len(lines) for lines in baskets(rows).values()]
    assert min(sizes) == 1 and max(sizes) >= 8  # small and big baskets
    for lines in baskets(rows).values():
        codes = [line["product_code"] for line in lines]
        assert len(codes) == len(set(codes))  # a product once per basket
        assert len({(line["user_id"], line["timestamp"][:10]) for line in lines}) == 1


def test_sorted_by_basket_keeps_each_basket_together_and_default_interleaves():
    def runs(rows):
        keys = [(r["store"], r["basket_id"]) for r in rows]
        return sum(1 for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key)

    sorted_rows = list(generate_rows(SampleConfig(rows=500, seed=2, sorted_by_basket=True)))
    assert runs(sorted_rows) == len(baskets(sorted_rows))
    mixed = list(generate_rows(SampleConfig(rows=500, seed=2)))
    assert runs(mixed) > len(baskets(mixed))  # some basket is split across the file


def test_bad_rows_each_break_a_rule_in_their_own_basket():
    rows = list(generate_rows(SampleConfig(rows=100, seed=5, bad_rows=5)))
    bad = [r for r in rows if r["basket_id"].startswith("BAD")]
    assert len(rows) == 105 and len(bad) == 5
    broken = [
        r["quantity"] in ("0", "dos") or "/" in r["timestamp"] or r["unit_price"].startswith("-") or not r["ticket_id"]
        for r in bad
    ]
    assert all(broken)


def test_correction_rows_restate_existing_baskets_with_a_change():
    rows = list(generate_rows(SampleConfig(rows=400, seed=8)))
    original = baskets(rows)
    fixes = baskets(sample_data.correction_rows(rows, baskets=6, seed=1))
    assert len(fixes) == 6
    for key, lines in fixes.items():
        assert key in original
        before = sorted((r["product_code"], r["quantity"]) for r in original[key])
        after = sorted((r["product_code"], r["quantity"]) for r in lines)
        assert before != after
        assert all(line["ticket_id"].startswith("C") for line in lines)


def test_cli_writes_csv_with_chosen_columns(tmp_path):
    out, fixes = tmp_path / "t.csv", tmp_path / "c.csv"
    args = ["--rows", "50", "--seed", "1", "--out", str(out), "--omit", "currency", "--omit", "user_id"]
    code = sample_data.main([*args, "--bad-rows", "2", "--correction", str(fixes), "--correction-baskets", "2"])
    assert code == 0
    with out.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == [c for c in sample_data.ALL_COLUMNS if c not in ("currency", "user_id")]
    assert len(rows) == 52
    assert fixes.exists()


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        sample_data.main(["--rows", "0", "--out", str(tmp_path / "x.csv")])
    with pytest.raises(SystemExit):
        sample_data.main(["--rows", "5", "--out", str(tmp_path / "x.csv"), "--omit", "store"])
