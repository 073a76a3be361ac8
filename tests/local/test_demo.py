"""`make demo`: the shipped sample through the whole local pipeline."""

from __future__ import annotations

import pytest

from lambdas.domain import queries
from local import demo


@pytest.mark.integration
def test_demo_runs_the_sample_and_prints_every_query(aws, capsys):
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "uploads/tickets.csv: loaded_with_rejections; rows read 304, accepted 300, rejected 4" in out
    assert "line 54: quantity 'dos' is not a whole number" in out
    assert "report: s3://compras-local-123456789012-us-east-1/ingest-reports/tickets.csv.report.json" in out
    assert "uploads/tickets-correcciones.csv: loaded" in out
    assert "deleted purchase" in out
    assert "ingest DLQ messages: 0; stream failures: 0" in out
    for query in queries.load().selects():
        assert f"== {query.name} (" in out
    assert "== generarReporteCompras: tenant " in out and "Top products" in out
    assert '{"level"' not in out  # the handlers' JSON logs go to the file, not the demo output
