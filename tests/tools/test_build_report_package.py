"""tools/build_report_package.py: pins, file selection, inputs digest (and its JS twin), requirement closure,
the offline fallback and a deterministic zip. No network: the pip path is exercised by tests/infra."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tools import build_report_package as brp

JS = brp.ROOT / "tools" / "report_artifact.js"


def make_tree(root: Path) -> Path:
    """A minimal project: code with byte code and sample events beside it, the SQL, the pins."""
    (root / "lambdas" / "report" / "events").mkdir(parents=True)
    (root / "lambdas" / "report" / "__pycache__").mkdir()
    (root / "lambdas" / "__init__.py").write_text("")
    (root / "lambdas" / "report" / "__init__.py").write_text("")
    (root / "lambdas" / "report" / "handler.py").write_text("VALUE = 1\n")
    (root / "lambdas" / "report" / "ñandú.py").write_text("# non-ASCII name\n")
    (root / "lambdas" / "report" / "events" / "sample.json").write_text("{}")
    (root / "lambdas" / "report" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (root / "lambdas" / "report" / "stray.pyc").write_bytes(b"\0")
    (root / "athena-queries.sql").write_text("-- name: q\nSELECT 1\n")
    (root / "requirements.txt").write_text("# run time\nboto3==1.44.5\nsqlglot==30.30.0  # SQL\n")
    (root / "config").mkdir()
    (root / "config" / "pipeline.yml").write_text("packaging:\n  reportArtifact: .build/report.zip\n")
    return root


def test_read_pins_and_what_is_shipped(tmp_path):
    pins = brp.read_pins(make_tree(tmp_path) / "requirements.txt")
    assert [str(pin) for pin in pins] == ["boto3==1.44.5", "sqlglot==30.30.0"]
    assert [str(pin) for pin in brp.shipped_pins(pins)] == ["sqlglot==30.30.0"]


def test_a_loose_requirement_is_refused_with_its_line(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("sqlglot==30.30.0\n\nrequests>=2\n")
    with pytest.raises(brp.BuildError, match=r"requirements.txt:3: 'requests>=2' is not an exact pin"):
        brp.read_pins(requirements)


def test_the_project_ships_sqlglot_and_not_what_lambda_has():
    shipped = {pin.name for pin in brp.shipped_pins(brp.read_pins(brp.ROOT / "requirements.txt"))}
    assert "sqlglot" in shipped
    assert not shipped & {"boto3", "aws-lambda-powertools"}


def test_code_files_leave_out_byte_code_and_sample_events(tmp_path):
    files = brp.code_files(make_tree(tmp_path))
    assert files == [
        "lambdas/__init__.py",
        "lambdas/report/__init__.py",
        "lambdas/report/handler.py",
        "lambdas/report/ñandú.py",
    ]


def test_inputs_digest_follows_code_sql_and_pins_but_not_byte_code(tmp_path):
    root = make_tree(tmp_path)
    before = brp.inputs_digest(root)
    (root / "lambdas" / "report" / "__pycache__" / "other.cpython-312.pyc").write_bytes(b"x")
    (root / "lambdas" / "report" / "events" / "other.json").write_text("[]")
    assert brp.inputs_digest(root) == before
    for path in ("lambdas/report/handler.py", "athena-queries.sql", "requirements.txt"):
        original = (root / path).read_bytes()
        (root / path).write_bytes(original + b"\n")
        assert brp.inputs_digest(root) != before, path
        (root / path).write_bytes(original)
    (root / "lambdas" / "report" / "new.py").write_text("")
    assert brp.inputs_digest(root) != before


def require_node() -> str:
    node = shutil.which("node")
    if node:
        return node
    if os.environ.get("CI"):
        pytest.fail("node missing: the Serverless resolver tools/report_artifact.js cannot be checked")
    pytest.skip("node missing")


def run_js(root: Path, script: str) -> subprocess.CompletedProcess:
    (root / "tools").mkdir(exist_ok=True)
    shutil.copy(JS, root / "tools" / "report_artifact.js")
    return subprocess.run(
        [require_node(), "-e", script], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_serverless_resolver_computes_the_same_digest(tmp_path):
    root = make_tree(tmp_path)
    done = run_js(root, "process.stdout.write(require('./tools/report_artifact.js').inputsDigest())")
    assert done.returncode == 0, done.stderr
    assert done.stdout == brp.inputs_digest(root)
    assert brp.inputs_digest() == brp.inputs_digest(brp.ROOT)  # and the real tree hashes without error


CHECK = """
const { check } = require('./tools/report_artifact.js');
try { check(process.argv[1]); console.log('ok'); } catch (error) { console.log(error.message); }
"""


def js_check(root: Path, artifact: Path) -> str:
    done = run_js(root, CHECK.replace("process.argv[1]", json.dumps(str(artifact))))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_resolver_refuses_a_missing_or_stale_zip(tmp_path):
    root = make_tree(tmp_path)
    artifact = root / ".build" / "report.zip"
    assert js_check(root, artifact).startswith("the report function's package .build/report.zip does not exist")
    brp.build(artifact, root=root, from_venv=True)
    assert js_check(root, artifact) == "ok"
    (root / "lambdas" / "report" / "handler.py").write_text("VALUE = 2\n")
    message = js_check(root, artifact)
    assert "is stale" in message and "make package" in message
    brp.build(artifact, root=root, from_venv=True)
    assert js_check(root, artifact) == "ok"


def test_offline_build_is_deterministic_and_holds_code_sql_and_sqlglot(tmp_path):
    root = make_tree(tmp_path / "project")
    first = brp.build(tmp_path / "a.zip", root=root, from_venv=True)
    (root / "lambdas" / "report" / "__pycache__" / "more.pyc").write_bytes(b"new byte code")
    second = brp.build(tmp_path / "b.zip", root=root, from_venv=True)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {"lambdas/report/handler.py", "athena-queries.sql", "sqlglot/__init__.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/events/" in n]
    assert not [n for n in names if n.startswith(("boto3", "requirements", "config"))]
    for info in infos:
        assert info.date_time == brp.ZIP_DATE
        assert info.external_attr >> 16 == 0o100644, info.filename
    manifest = json.loads(brp.manifest_path(first).read_text(encoding="utf-8"))
    assert manifest["inputs_sha256"] == brp.inputs_digest(root)
    assert manifest["packages"] == {"sqlglot": "30.30.0"}
    assert manifest["packages_from"] == "venv"


def test_the_default_output_comes_from_the_config(tmp_path):
    root = make_tree(tmp_path)
    assert brp.default_output(root) == root / ".build" / "report.zip"
    (root / "config" / "pipeline.yml").write_text("service: x\n")
    with pytest.raises(brp.BuildError, match=r"packaging\.reportArtifact"):
        brp.default_output(root)


def test_the_fallback_refuses_another_version_than_the_pin(tmp_path):
    with pytest.raises(brp.BuildError, match=r"sqlglot==0.0.1: the environment has sqlglot 30.30.0, not the pinned"):
        brp.copy_from_environment([brp.Pin("sqlglot", "0.0.1")], tmp_path)


def write_dist(site: Path, name: str, requires: list[str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", *(f"Requires-Dist: {r}\n" for r in requires)]
    (info / "METADATA").write_text("".join(lines))


def test_requirements_of_shipped_packages_must_be_shipped_or_on_lambda(tmp_path):
    site = tmp_path / "site"
    write_dist(
        site,
        "shipped",
        [
            "python-dateutil>=2",  # in the Lambda runtime
            "helper",  # shipped below
            "pytest; extra == 'test'",  # an extra: not installed
            "tomli; python_version < '3.11'",  # not for python3.12
        ],
    )
    write_dist(site, "helper", [])
    brp.check_requirements(site)
    write_dist(site, "other", ["missing-lib==1"])
    with pytest.raises(brp.BuildError, match=r"other requires missing-lib==1"):
        brp.check_requirements(site)
