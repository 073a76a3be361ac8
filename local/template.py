"""The packaged CloudFormation template of a stage: `serverless package`, offline, cached by a digest of its inputs.

The local stack (local/stack.py) deploys exactly this template into moto's CloudFormation, so the local pipeline
runs on what `serverless deploy` would create. Packaging runs the project's Serverless CLI (osls, node_modules/)
with no network and no account: telemetry and notifications off, no EC2 metadata lookups, fake credentials,
output to a directory of its own (`--package`), so nothing in the working tree changes. It takes ~6 s, so the
result is kept under ``.build/local-stack/<stage>-<digest>/`` and reused while none of its inputs changed:
serverless.yml, config/**, tools/report_artifact.js, package.json / package-lock.json (the CLI's version), and
what goes into the function packages (lambdas/**, athena-queries.sql, requirements.txt:
``tools.build_report_package.inputs_digest``), plus the stage and the params.

The report function's zip is built first with the offline build of tools/build_report_package.py (``from_venv``:
the pinned pure-Python wheels copied from this virtualenv), so packaging never needs PyPI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools import build_report_package

ROOT = Path(__file__).resolve().parent.parent
SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"
CACHE_DIR = ROOT / ".build" / "local-stack"
CLI_LOCK_DIR = ROOT / ".build" / "serverless-cli"  # its .lock serialises every `serverless package` (run_package)
TEMPLATE_FILE = "cloudformation-template-update-stack.json"
# Files `serverless package` reads besides the function code (which build_report_package.inputs_digest covers).
INFRA_INPUTS = (
    "serverless.yml",
    "package.json",
    "package-lock.json",
    "tools/report_artifact.js",
    "tools/alarm_email_check.js",
)
INFRA_DIRS = ("config",)
PACKAGE_TIMEOUT_SECONDS = 300


class PackagingError(RuntimeError):
    """`serverless package` failed or cannot run (Node / node_modules missing)."""


def offline_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an offline `serverless package`: no AWS_* of the caller (no endpoint, no real
    credentials), telemetry and notifications off, fake credentials so the SDK does not look for real ones."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    env.update(
        {
            "SLS_TELEMETRY_DISABLED": "1",
            "SLS_NOTIFICATIONS_MODE": "off",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "packaging-offline",
            "AWS_SECRET_ACCESS_KEY": "packaging-offline",
        }
    )
    return env


def package_command(out_dir: Path, *, stage: str, params: Mapping[str, str]) -> list[str]:
    command = [str(SERVERLESS), "package", "--stage", stage, "--package", str(out_dir)]
    command += [f"--param={key}={value}" for key, value in params.items()]
    return command


def run_package(out_dir: Path, *, stage: str, params: Mapping[str, str]) -> subprocess.CompletedProcess:
    """`serverless package --stage <stage> --package <out_dir> --param=...`, offline; the completed process.

    One CLI at a time in the service directory, whoever calls (the local stack, the infra tests, any process):
    even with --package, osls writes and cleans .serverless/ of the service directory, so two concurrent runs
    break each other (ENOENT on .serverless/serverless-state.json)."""
    with _locked(CLI_LOCK_DIR):
        return subprocess.run(  # noqa: S603 (the project's own CLI, arguments built here)
            package_command(out_dir, stage=stage, params=params),
            cwd=ROOT,
            env=offline_environment(),
            capture_output=True,
            text=True,
            timeout=PACKAGE_TIMEOUT_SECONDS,
            check=False,
        )


def _infra_files(root: Path) -> Iterator[str]:
    yield from INFRA_INPUTS
    for directory in INFRA_DIRS:
        for path in sorted((root / directory).rglob("*")):
            if path.is_file():
                yield path.relative_to(root).as_posix()


def inputs_digest(stage: str, params: Mapping[str, str] | None = None, root: Path = ROOT) -> str:
    """SHA-256 over everything the packaged template of `stage` depends on (see the module doc)."""
    total = hashlib.sha256()
    total.update(json.dumps({"stage": stage, "params": dict(params or {})}, sort_keys=True).encode())
    total.update(f"code\0{build_report_package.inputs_digest(root)}\n".encode())
    for relative in sorted(set(_infra_files(root))):
        path = root / relative
        content = path.read_bytes() if path.is_file() else b"<missing>"
        total.update(f"{relative}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    return total.hexdigest()


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Serverless CLI at a time in the service directory
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def require_serverless_cli() -> None:
    if not SERVERLESS.exists() or shutil.which("node") is None:
        raise PackagingError(
            "the local stack is the packaged serverless.yml: it needs Node and node_modules/ "
            "(`npm ci`, or any `make` target that installs them: make demo / make test)"
        )


def packaged_template(
    stage: str, params: Mapping[str, str] | None = None, *, cache_dir: Path = CACHE_DIR, progress: Any = None
) -> dict[str, Any]:
    """The packaged template of `stage` (a dict), from the cache when its inputs did not change."""
    params = dict(params or {})
    digest = inputs_digest(stage, params)
    entry = cache_dir / f"{stage}-{digest[:16]}"
    template_path = entry / TEMPLATE_FILE
    if not template_path.exists():
        require_serverless_cli()
        with _locked(cache_dir):
            if not template_path.exists():  # another process may have packaged it while we waited
                if progress:
                    progress(f"packaging serverless.yml for stage {stage!r} (inputs changed; cached afterwards) ...")
                _package_into(entry, stage=stage, params=params, cache_dir=cache_dir)
    return json.loads(template_path.read_text(encoding="utf-8"))


def _package_into(entry: Path, *, stage: str, params: dict[str, str], cache_dir: Path) -> None:
    for old in cache_dir.glob(f"{stage}-*"):  # earlier digests of this stage: never used again
        shutil.rmtree(old, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{stage}-", dir=cache_dir) as scratch:
        scratch_dir = Path(scratch)
        report_zip = build_report_package.build(scratch_dir / "report" / "generarReporteCompras.zip", from_venv=True)
        out_dir = scratch_dir / "package"
        done = run_package(out_dir, stage=stage, params={"reportArtifact": str(report_zip), **params})
        if done.returncode != 0:
            raise PackagingError(f"serverless package --stage {stage} failed:\n{done.stdout}\n{done.stderr}")
        staged = scratch_dir / "entry"
        staged.mkdir()
        shutil.copy2(out_dir / TEMPLATE_FILE, staged / TEMPLATE_FILE)
        staged.rename(entry)  # atomic: a reader sees a complete entry or none
