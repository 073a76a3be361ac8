"""The CI security scans: cfn-lint and checkov on the packaged templates, bandit on the code,
pip-audit on the Lambda run-time requirements. The tools live in their own virtualenv
(.venv-lint, requirements-lint.txt; `make setup` builds it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT

pytestmark = pytest.mark.infra

LINT_BIN = ROOT / ".venv-lint" / "bin"
BANDIT_TARGETS = ("lambdas", "local", "pipeline_config", "verify_datacatalog.py")
RUNTIME_REQUIREMENTS = ROOT / "requirements.txt"


def tool(name: str) -> Path:
    path = LINT_BIN / name
    if not path.exists():
        message = f"{path} missing: run `make setup` (builds .venv-lint from requirements-lint.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=env, **kwargs
    )


# --- template ----------------------------------------------------------------------------------


def test_cfn_lint_finds_no_errors(packaged):
    templates = [str(p.template_path) for p in packaged.values()]
    done = run([str(tool("cfn-lint")), "--non-zero-exit-code", "error", *templates])
    assert done.returncode == 0, f"cfn-lint errors:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("mode", ["leastPrivilege", "labRole"])
def test_checkov_has_no_failed_check_and_every_skip_has_a_reason(packaged, mode):
    template = packaged[mode].template_path
    done = run(
        [
            str(tool("checkov")),
            "--file",
            str(template),
            "--framework",
            "cloudformation",
            "--skip-download",  # offline: no guideline/severity download from Prisma Cloud
            "--output",
            "json",
        ]
    )
    assert done.returncode in (0, 1), f"checkov did not run:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == [], "checkov findings (fix them or suppress inline with a reason):\n" + "\n".join(failed)
    assert results["passed_checks"], "checkov checked nothing"
    for skipped in results["skipped_checks"]:
        reason = (skipped["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 40, f"{skipped['check_id']} on {skipped['resource']} is suppressed without a reason"


# --- code --------------------------------------------------------------------------------------


def test_bandit_finds_no_medium_or_high_issue():
    targets = [t for t in BANDIT_TARGETS if (ROOT / t).exists()]
    done = run([str(tool("bandit")), "-r", *targets, "--severity-level", "medium", "--format", "json", "--quiet"])
    assert done.returncode in (0, 1), f"bandit did not run:\n{done.stderr}"
    report = json.loads(done.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity']}): {r['issue_text']}"
        for r in report["results"]
    ]
    assert findings == [], "bandit medium/high findings:\n" + "\n".join(findings)
    assert not report["errors"], report["errors"]


# --- dependencies --------------------------------------------------------------------------------


def runtime_closure() -> dict[str, str]:
    """name -> installed version of requirements.txt and everything they depend on (no extras),
    read from the test virtualenv, which installs exactly those pins."""
    pins = {}
    for line in RUNTIME_REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt must pin exact versions: {line!r}"
            pins[name.strip().lower()] = version.strip()
    closure: dict[str, str] = {}
    pending = list(pins)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        dist = metadata.distribution(name)
        closure[name] = dist.version
        if name in pins:
            assert dist.version == pins[name], f"{name}: venv has {dist.version}, requirements.txt pins {pins[name]}"
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            if ";" in requirement and not _marker_applies(requirement.split(";", 1)[1]):
                continue
            pending.append(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower())
    return closure


def _marker_applies(marker: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker).evaluate()


def test_pip_audit_finds_no_known_vulnerability_in_runtime_requirements(tmp_path):
    closure = runtime_closure()
    pinned = tmp_path / "runtime-closure.txt"
    pinned.write_text("".join(f"{n}=={v}\n" for n, v in sorted(closure.items())), encoding="utf-8")
    done = run(
        [
            str(tool("pip-audit")),
            "--requirement",
            str(pinned),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ]
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    if report is None or all("skip_reason" in d for d in report["dependencies"]):
        # The vulnerability service (PyPI JSON API) cannot be reached or does not know the pins.
        message = (
            "pip-audit could not audit anything (vulnerability service unreachable or unaware of the pins): "
            f"{(done.stderr or done.stdout)[-1500:]}"
        )
        if os.environ.get("CI") and not os.environ.get("PIP_AUDIT_ALLOW_UNREACHABLE"):
            pytest.fail(message + "\nSet PIP_AUDIT_ALLOW_UNREACHABLE=1 only on runners without PyPI access.")
        pytest.skip(message)
    vulnerable = [
        f"{d['name']}=={d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
        for d in report["dependencies"]
        if d.get("vulns")
    ]
    assert vulnerable == [], "known vulnerabilities in the Lambda run-time requirements:\n" + "\n".join(vulnerable)
    not_audited = [d["name"] for d in report["dependencies"] if "skip_reason" in d]
    assert not_audited == [], f"not audited: {not_audited}"


def test_runtime_closure_covers_the_pins():
    closure = runtime_closure()
    assert {"aws-lambda-powertools", "boto3", "botocore"} <= set(closure)
    assert sys.version_info >= (3, 11)
