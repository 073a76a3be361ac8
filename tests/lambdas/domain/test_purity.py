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


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_domain_modules_import_only_the_standard_library_and_the_domain():
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
    module.write_text("import os\nfrom lambdas.shared import processes\nfrom . import sibling\n", encoding="utf-8")
    assert imported_modules(module) == {"os", "lambdas.shared"}
