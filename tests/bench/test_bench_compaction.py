"""bench.compaction at its smallest size: the files are written in the export's layout, the compacted table is
built by the maintenance MERGE, both sides give identical rows, the section is spliced into the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import compaction
from lambdas.domain import keys

pytestmark = pytest.mark.slow


def test_generated_changes_follow_the_export_layout(tmp_path):
    data = compaction.generate(tmp_path, changes=300, days=10, tenants=3)
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == data["changes"] == 300
    assert sum(data["events"].values()) == 300 and data["events"]["MODIFY"] and data["events"]["REMOVE"]
    for path in files[:50]:
        key = path.relative_to(tmp_path).as_posix()
        parsed = keys.parse_object_key(key, "compras/")
        document = json.loads(path.read_text(encoding="utf-8"))
        assert parsed.tenant_id == document["tenant_id"] and parsed.compra_id == document["compra_id"]


def test_smallest_run_gives_identical_results_and_writes_its_section(tmp_path):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nother sections stay\n", encoding="utf-8")
    status = compaction.main(
        ["--changes", "400", "--days", "10", "--tenants", "2", "--work-dir", str(tmp_path / "w"), "--out", str(report)]
    )
    assert status == 0
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nother sections stay\n")
    assert text.count(compaction.BEGIN) == text.count(compaction.END) == 1
    assert "identical results **PASS**" in text and "**NO**" not in text
    assert "Monthly AWS cost" in text
    # A second run replaces the section, and bench/run.py keeps it when it rewrites the rest of the file.
    assert compaction.splice(text, compaction.BEGIN + "\nnew\n" + compaction.END + "\n").count("new") == 1
    kept = compaction.keep_section(report, "# rewritten by python -m bench\n")
    assert kept.startswith("# rewritten by python -m bench\n") and compaction.BEGIN in kept
    assert not Path(tmp_path / "w").exists()
