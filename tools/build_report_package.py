"""Build the deployment package of the report function (generarReporteCompras).

    python -m tools.build_report_package [--output PATH] [--from-venv]

The report function binds athena-queries.sql with lambdas/domain/queries.py, which imports sqlglot: neither the
Lambda python3.12 runtime nor the Powertools layer has it, so this zip carries it. serverless.yml points only that
function at the zip (function-level ``package.artifact``); the two other functions keep the service package
(``lambdas/**`` + athena-queries.sql).

The zip holds, at its root:

* ``lambdas/**`` (no ``__pycache__``, no ``*.pyc``, no ``events/`` samples) and ``athena-queries.sql``;
* every distribution pinned in requirements.txt that the runtime or the Powertools layer does not provide
  (:data:`PROVIDED_ON_LAMBDA`), installed with ``pip install --target --no-deps --only-binary=:all:
  --platform manylinux2014_x86_64 --python-version 3.12 --implementation cp`` so the files match Lambda
  python3.12 x86_64. The run-time requirements of what is shipped are checked: each must be shipped too or be
  provided on Lambda, otherwise the build fails naming it.

It is deterministic: entries sorted, fixed timestamps (1980-01-01), fixed permissions (0644), no byte code,
so the same inputs give the same bytes (and the same Lambda code hash, hence no needless function update).

Beside the zip, ``<zip>.manifest.json`` records the shipped pins and :func:`inputs_digest` of the inputs.
serverless.yml resolves the artifact path through tools/report_artifact.js, which recomputes that digest and
stops ``serverless package``/``deploy`` with a clear message when the zip is missing or older than the code.
Keep :func:`inputs_digest` and ``inputsDigest`` in tools/report_artifact.js identical.

Fallback (documented in docs/infrastructure.md): when pip cannot download (no network), ``--from-venv`` — or
automatically after a failed download — copies the files of the same pinned version from the current virtual
environment. That is only allowed for pure-Python wheels (``Root-Is-Purelib: true``), which are identical on
every platform; anything else fails the build.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "config" / "pipeline.yml"
REQUIREMENTS = "requirements.txt"
QUERIES = "athena-queries.sql"
CODE_DIR = "lambdas"
EXCLUDED_DIRS = frozenset({"__pycache__", "events"})
EXCLUDED_SUFFIXES = (".pyc",)

# Distributions present on Lambda without shipping them (canonical names):
# the python3.12 runtime has boto3 and its dependencies; the AWS-managed Powertools layer has Powertools and
# its dependencies. Everything else the report path imports must be in the zip.
PROVIDED_ON_LAMBDA = frozenset(
    {
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "python-dateutil",
        "six",
        "urllib3",
        "aws-lambda-powertools",
        "typing-extensions",
    }
)

# The Lambda target: python3.12 on x86_64 (serverless.yml provider.runtime / provider.architecture).
LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_MARKERS = {
    "python_version": LAMBDA_PYTHON,
    "python_full_version": f"{LAMBDA_PYTHON}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--: readable by the Lambda runtime user
PIP_TIMEOUT_SECONDS = 600


class BuildError(RuntimeError):
    """The package cannot be built (what, where, why in the message)."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def default_output(root: Path = ROOT) -> Path:
    """packaging.reportArtifact of config/pipeline.yml (relative to the repository root)."""
    with (root / "config" / "pipeline.yml").open(encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    try:
        return root / config["packaging"]["reportArtifact"]
    except (KeyError, TypeError):
        raise BuildError("config/pipeline.yml: packaging.reportArtifact (the report zip path) is missing") from None


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".manifest.json")


def read_pins(requirements: Path) -> list[Pin]:
    """The `name==version` lines of requirements.txt (comments and blank lines skipped); anything else fails."""
    pins = []
    for number, line in enumerate(requirements.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", text)
        if not match:
            raise BuildError(
                f"{requirements.name}:{number}: {text!r} is not an exact pin `name==version`: the Lambda package "
                "must be reproducible"
            )
        pins.append(Pin(canonicalize_name(match.group(1)), match.group(2)))
    return pins


def shipped_pins(pins: Iterable[Pin]) -> list[Pin]:
    """The pins Lambda does not provide: they go into the zip."""
    return sorted((pin for pin in pins if pin.name not in PROVIDED_ON_LAMBDA), key=lambda pin: pin.name)


def code_files(root: Path) -> list[str]:
    """Relative POSIX paths of the code that goes into the zip: lambdas/** without byte code and sample events."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root / CODE_DIR):
        dirnames[:] = [name for name in dirnames if name not in EXCLUDED_DIRS]
        for name in filenames:
            if not name.endswith(EXCLUDED_SUFFIXES):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    if not found:
        raise BuildError(f"no code found under {root / CODE_DIR}")
    return sorted(found)


def inputs_digest(root: Path = ROOT) -> str:
    """SHA-256 over the inputs of the zip: the code files, athena-queries.sql and requirements.txt.

    For each input in sorted order: ``<relative path>\\0<sha256 hex of its bytes>\\n``. tools/report_artifact.js
    computes the same value to tell a stale zip from a fresh one."""
    total = hashlib.sha256()
    for relative in sorted([*code_files(root), QUERIES, REQUIREMENTS]):
        content = (root / relative).read_bytes()
        total.update(f"{relative}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    return total.hexdigest()


def pip_install(pins: list[Pin], target: Path) -> None:
    """Install the pins for Lambda python3.12 x86_64 into target (wheels only, no dependencies, no byte code)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "2",
        "--timeout",
        "20",
        "--no-deps",
        "--no-compile",
        "--only-binary=:all:",
        "--platform",
        LAMBDA_PLATFORM,
        "--python-version",
        LAMBDA_PYTHON,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *(str(pin) for pin in pins),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BuildError(f"pip could not install {', '.join(map(str, pins))} for Lambda:\n{done.stderr.strip()}")


def copy_from_environment(pins: list[Pin], target: Path) -> None:
    """Fallback without network: copy each pin's files from the running environment (pure-Python wheels only)."""
    for pin in pins:
        try:
            dist = importlib.metadata.distribution(pin.name)
        except importlib.metadata.PackageNotFoundError:
            raise BuildError(f"{pin}: not installed in {sys.prefix}, cannot copy it (pip install it first)") from None
        if dist.version != pin.version:
            raise BuildError(f"{pin}: the environment has {pin.name} {dist.version}, not the pinned {pin.version}")
        wheel = dist.read_text("WHEEL") or ""
        if not re.search(r"^Root-Is-Purelib:\s*true\s*$", wheel, re.MULTILINE | re.IGNORECASE):
            raise BuildError(f"{pin}: not a pure-Python wheel; its installed files may not run on Lambda x86_64/3.12")
        for file in dist.files or ():
            parts = file.parts
            if parts[0] == ".." or "__pycache__" in parts or file.name.endswith(EXCLUDED_SUFFIXES):
                continue  # scripts outside site-packages, byte code of this interpreter
            source = Path(str(file.locate()))
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def check_requirements(target: Path) -> None:
    """Every run-time requirement of a shipped distribution is shipped too or provided on Lambda."""
    shipped = {
        canonicalize_name(dist.metadata["Name"]): dist for dist in importlib.metadata.distributions(path=[str(target)])
    }
    environment = {**default_environment(), **LAMBDA_MARKERS, "extra": ""}
    missing = []
    for name, dist in sorted(shipped.items()):
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            needed = canonicalize_name(requirement.name)
            if needed not in shipped and needed not in PROVIDED_ON_LAMBDA:
                missing.append(f"{name} requires {requirement}")
    if missing:
        raise BuildError(
            "run-time requirements neither shipped nor provided on Lambda (pin them in requirements.txt): "
            + "; ".join(missing)
        )


def _site_files(site: Path) -> Iterator[str]:
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if path.is_file() and "__pycache__" not in relative.parts and not path.name.endswith(EXCLUDED_SUFFIXES):
            yield relative.as_posix()


def write_zip(destination: Path, members: dict[str, Path]) -> None:
    """members: archive name -> file; written sorted with fixed dates and modes, atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3  # Unix, so external_attr carries the permissions
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, members[name].read_bytes(), compresslevel=9)
    partial.replace(destination)


def build(output: Path | None = None, *, root: Path = ROOT, from_venv: bool = False) -> Path:
    """Write the report zip and its manifest; return the zip path."""
    output = (output or default_output(root)).resolve()
    pins = shipped_pins(read_pins(root / REQUIREMENTS))
    members = {relative: root / relative for relative in code_files(root)}
    if not (root / QUERIES).is_file():
        raise BuildError(f"{root / QUERIES} is missing: the report function reads it from the package root")
    members[QUERIES] = root / QUERIES
    with tempfile.TemporaryDirectory(prefix="report-package-") as scratch:
        site = Path(scratch) / "site"
        site.mkdir()
        source = "pip"
        if pins and not from_venv:
            try:
                pip_install(pins, site)
            except (BuildError, subprocess.TimeoutExpired) as error:
                print(f"warning: {error}\nfalling back to the files of this virtual environment", file=sys.stderr)
                shutil.rmtree(site)
                site.mkdir()
                from_venv = True
        if pins and from_venv:
            copy_from_environment(pins, site)
            source = "venv"
        check_requirements(site)
        for relative in _site_files(site):
            if relative in members or relative.split("/", 1)[0] in {CODE_DIR, QUERIES}:
                raise BuildError(f"{relative}: a shipped distribution collides with the project's own files")
            members[relative] = site / relative
        write_zip(output, members)
    manifest = {
        "artifact": output.name,
        "inputs_sha256": inputs_digest(root),
        "packages": {pin.name: pin.version for pin in pins},
        "packages_from": source,
        "python": LAMBDA_PYTHON,
        "platform": LAMBDA_PLATFORM,
    }
    manifest_path(output).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_report_package", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, help="zip path (default: packaging.reportArtifact of the config)")
    parser.add_argument(
        "--from-venv",
        action="store_true",
        help="copy the pinned pure-Python packages from this virtualenv instead of downloading them (offline)",
    )
    args = parser.parse_args(argv)
    try:
        path = build(args.output, from_venv=args.from_venv)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
