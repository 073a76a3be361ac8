"""The report function's own zip (tools/build_report_package.py) as packaged by `serverless package`: what it
holds, that the handler imports from it alone (plus what Lambda provides), and that only that function uses it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.infra import cfn
from tests.infra.conftest import IAM_MODES
from tools.build_report_package import PROVIDED_ON_LAMBDA

pytestmark = pytest.mark.infra

REPORT = "GenerarReporteComprasLambdaFunction"
OTHERS = ("IngestarTicketsLambdaFunction", "ActualizarComprasStreamLambdaFunction")


def names_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_report_zip_holds_the_code_the_queries_and_sqlglot_at_the_root(packaged):
    names = names_in(packaged["leastPrivilege"].report_artifact)
    for required in (
        "lambdas/report/handler.py",
        "lambdas/domain/queries.py",
        "lambdas/__init__.py",
        "athena-queries.sql",
        "sqlglot/__init__.py",
        "sqlglot/dialects/athena.py",
    ):
        assert required in names, required
    for name in names:
        top = name.split("/", 1)[0]
        assert top in {"lambdas", "athena-queries.sql", "sqlglot"} or top.startswith("sqlglot-"), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert "/events/" not in name, f"sample events stay out of the package: {name}"


def test_report_zip_ships_nothing_lambda_already_has(packaged):
    tops = {name.split("/", 1)[0] for name in names_in(packaged["leastPrivilege"].report_artifact)}
    for forbidden in ("boto3", "botocore", "aws_lambda_powertools", "tests", "node_modules", ".venv", "local"):
        assert forbidden not in tops, forbidden


def test_report_function_code_is_that_zip_in_both_iam_modes(packaged):
    for mode in IAM_MODES:
        result = packaged[mode]
        template = result.template
        report_key = cfn.resource(template, REPORT)["Properties"]["Code"]["S3Key"]
        assert report_key.endswith("/" + result.report_artifact.name), (mode, report_key)
        for other in OTHERS:
            key = cfn.resource(template, other)["Properties"]["Code"]["S3Key"]
            assert key.endswith("/compras.zip"), (mode, other, key)
        state = json.loads((result.directory / "serverless-state.json").read_text(encoding="utf-8"))
        functions = state["service"]["functions"]
        assert Path(functions["generarReporteCompras"]["package"]["artifact"]) == result.report_artifact
        assert not functions["ingestarTickets"]["package"].get("artifact")
        assert not functions["actualizarComprasStream"]["package"].get("artifact")


def test_the_other_functions_package_has_no_sqlglot(packaged):
    for mode in IAM_MODES:
        names = names_in(packaged[mode].artifact)
        assert "lambdas/ingestion/handler.py" in names
        assert not [name for name in names if name.startswith("sqlglot")], mode


def lambda_runtime_directory(into: Path) -> Path:
    """What the python3.12 runtime and the Powertools layer put on sys.path, taken from the dev venv:
    links to the top-level modules of the PROVIDED_ON_LAMBDA distributions (and nothing else)."""
    into.mkdir()
    for name in sorted(PROVIDED_ON_LAMBDA):
        dist = importlib.metadata.distribution(name)
        tops = {file.parts[0] for file in dist.files or () if file.parts[0] != ".."}
        for top in sorted(tops):
            if top.endswith(".dist-info") or top == "__pycache__":
                continue
            link = into / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    return into


IMPORT_CHECK = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import lambdas.report.handler as handler
from lambdas.domain import queries
import sqlglot
query_file = queries.load()
params = queries.QueryParams.of("t-1", "2025-01-01", "2025-01-31")
bound = []
for name in query_file.names:
    try:
        bound.append(query_file.bind(name, params))
    except queries.QueryParameterError:
        pass  # a query without the params CTE
print(json.dumps({
    "handler": handler.__file__,
    "sqlglot": sqlglot.__file__,
    "queries_path": str(queries.default_path()),
    "names": query_file.names,
    "bound": bound,
    "modules": sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}),
}))
"""


def test_handler_imports_from_the_extracted_zip_alone(packaged, tmp_path):
    code = tmp_path / "task"
    with zipfile.ZipFile(packaged["leastPrivilege"].report_artifact) as archive:
        archive.extractall(code)
    runtime = lambda_runtime_directory(tmp_path / "runtime")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POWERTOOLS_SERVICE_NAME": "compras",
        "POWERTOOLS_METRICS_NAMESPACE": "compras",
    }
    # -I: no PYTHONPATH, no user site, no script dir; -S: no site-packages of the venv.
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_CHECK, str(code), str(runtime)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["handler"]).is_relative_to(code)
    assert Path(result["sqlglot"]).is_relative_to(code)
    assert Path(result["queries_path"]) == code / "athena-queries.sql"
    assert "compras_actuales" in result["names"]
    assert result["bound"], "no query of athena-queries.sql could be bound with sqlglot from the zip"
    for sql in result["bound"]:
        assert "'t-1'" in sql and "'2025-01-31'" in sql, sql
    repo = Path(__file__).resolve().parents[2]
    for module_file in result["modules"]:
        if module_file:
            assert not Path(module_file).is_relative_to(repo), f"imported from the repository: {module_file}"
