"""Session fixtures of the template checks: `serverless package --stage dev` once per IAM mode.

The report function's zip (tools/build_report_package.py) is built first, under the same lock, into the
shared directory and passed with `--param=reportArtifact=...`, so the working tree's .build/ is not used.

Packaging runs the real Serverless CLI (osls, node_modules/) offline, as the local stack does
(local/template.py: telemetry and notifications off, no EC2 metadata lookups, fake credentials), output to a
temp dir (`--package`), so nothing in the working tree changes. Without node_modules the checks fail in CI
and are skipped elsewhere (`make setup` installs them).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local import template as local_template
from tools import build_report_package

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = local_template.SERVERLESS
STAGE = "dev"
IAM_MODES = ("leastPrivilege", "labRole")


@dataclass(frozen=True)
class Packaged:
    iam_mode: str
    directory: Path
    report_artifact: Path

    @property
    def template_path(self) -> Path:
        return self.directory / "cloudformation-template-update-stack.json"

    @property
    def template(self) -> dict[str, Any]:
        return json.loads(self.template_path.read_text(encoding="utf-8"))

    @property
    def artifact(self) -> Path:
        return self.directory / "compras.zip"


def shared_directory(tmp_path_factory) -> Path:
    """Per test run, shared by the xdist workers: lock file, report zip, packaged outputs.

    Under xdist each worker's base temp is <run>/popen-gwN, so the run's directory is its parent; without
    xdist it is the base temp itself (its parent, /tmp/pytest-of-<user>, is shared by every run)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "serverless-package"
    shared.mkdir(exist_ok=True)
    return shared


def report_artifact(shared: Path) -> Path:
    """The report zip in the shared directory, (re)built when missing or older than the code.

    Call it holding the lock: one build at a time; a rebuild only happens when someone edits lambdas/ during
    the run (the same inputs digest tools/report_artifact.js checks)."""
    artifact = shared / "report" / "generarReporteCompras.zip"
    manifest = build_report_package.manifest_path(artifact)
    current = build_report_package.inputs_digest()
    if not manifest.exists() or json.loads(manifest.read_text(encoding="utf-8"))["inputs_sha256"] != current:
        build_report_package.build(artifact)
    return artifact


def package(
    out_dir: Path, *, report_zip: Path, stage: str = STAGE, params: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    params = {"reportArtifact": str(report_zip), **(params or {})}
    return local_template.run_package(out_dir, stage=stage, params=params)


def require_serverless_cli() -> None:
    if SERVERLESS.exists() and shutil.which("node"):
        return
    message = "node_modules/.bin/serverless or node missing: run `make setup` (npm ci)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def packaged(tmp_path_factory) -> dict[str, Packaged]:
    """Both IAM modes packaged for stage dev: {'leastPrivilege': Packaged, 'labRole': Packaged}.

    Packaged once per test run: pytest-xdist workers share the output through the run's base temp
    directory, and a file lock makes one worker package while the other waits (two concurrent
    Serverless CLIs in one service directory are not safe, and it would cost twice the CPU)."""
    require_serverless_cli()
    shared = shared_directory(tmp_path_factory)
    result: dict[str, Packaged] = {}
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            report_zip = report_artifact(shared)
            for mode in IAM_MODES:
                out_dir = shared / mode
                marker = out_dir / ".complete"
                if not marker.exists():
                    shutil.rmtree(out_dir, ignore_errors=True)
                    done = package(out_dir, report_zip=report_zip, params={"iamMode": mode})
                    assert done.returncode == 0, f"serverless package ({mode}) failed:\n{done.stdout}\n{done.stderr}"
                    marker.touch()
                result[mode] = Packaged(iam_mode=mode, directory=out_dir, report_artifact=report_zip)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return result


@pytest.fixture(scope="session")
def template(packaged) -> dict[str, Any]:
    """The default (least-privilege) template of stage dev."""
    return packaged["leastPrivilege"].template
