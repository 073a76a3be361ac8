"""The domain is pure Python: its modules import the standard library, each other and sqlglot (a pure SQL parser,
no I/O) — no boto3, no Powertools, no adapters, no lambdas.shared: what needs a process, a client or the
environment is injected."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import lambdas.domain

DOMAIN = Path(lambdas.domain.__file__).parent
ALLOWED_THIRD_PARTY = {"sqlglot"}  # lambdas/domain/queries.py parses athena-queries.sql with it


def imported_modules(path: Path, package: str = "lambdas.domain") -> set[str]:
    """Every module ``path`` imports (also inside functions), relative imports resolved against ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def test_domain_modules_import_only_the_standard_library_the_domain_and_sqlglot():
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) >= 5
    foreign = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names | ALLOWED_THIRD_PARTY
        and name != "lambdas.domain"
        and not name.startswith("lambdas.domain.")
    }
    assert not foreign, f"the domain must stay pure Python; inject these instead: {sorted(foreign)}"


def test_the_check_sees_a_foreign_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom lambdas.shared import processes\nfrom . import sibling\nfrom ..adapters import s3\n"
        "def f():\n    import boto3\n",
        encoding="utf-8",
    )
    assert imported_modules(module) == {"os", "lambdas.shared", "lambdas.domain", "lambdas.adapters", "boto3"}
