"""The named queries of athena-queries.sql: parsing, safe parameter binding, view definitions.

Pure Python (sqlglot, no boto3): the report function runs the bound SQL on Athena, the local runner
(local/athena_duckdb.py) transpiles it to DuckDB.

File convention (see the header of athena-queries.sql and docs/athena.md):

* each statement follows a ``-- name: <id>`` line; the comment lines right after it describe it;
* a ``CREATE [OR REPLACE] VIEW`` statement defines a view the other queries read;
* a query with parameters starts with a one-row CTE ``params`` of literals: ``tenant_id`` (NULL = every
  tenant), ``date_from`` / ``date_to`` (inclusive ``'YYYY-MM-DD'`` strings). :func:`QueryFile.bind` replaces
  those literals in the syntax tree (values become SQL literals through sqlglot, never pasted text).

The Lambda package ships athena-queries.sql at its root, beside the ``lambdas`` package, which is where
:func:`default_path` looks (the repository root in a checkout).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

DIALECT = "athena"
PARAMS_CTE = "params"
# The view the named queries read: the compacted current state (Iceberg table, docs/compaction.md).
STATE_VIEW = "compras_vigentes"
_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S*)\s*$")
_VALID_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TENANT_LENGTH = 1024


class QueryFileError(ValueError):
    """athena-queries.sql does not follow the convention (what, where, why in the message)."""


class QueryParameterError(ValueError):
    """A parameter value cannot be bound (what, which value, why in the message)."""


def default_path() -> Path:
    """athena-queries.sql beside the ``lambdas`` package: repository root, or the Lambda package root."""
    return Path(__file__).resolve().parent.parent.parent / "athena-queries.sql"


@dataclass(frozen=True)
class QueryParams:
    """Validated parameters: tenant (None = every tenant) and an inclusive day range (None = open)."""

    tenant_id: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @classmethod
    def of(
        cls,
        tenant_id: str | None = None,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
    ) -> QueryParams:
        if tenant_id is not None:
            if not isinstance(tenant_id, str) or not tenant_id.strip():
                raise QueryParameterError(f"tenant_id {tenant_id!r}: must be a non-empty string (or None for all)")
            if len(tenant_id) > MAX_TENANT_LENGTH or any(ord(ch) < 32 for ch in tenant_id):
                raise QueryParameterError(f"tenant_id {tenant_id[:40]!r}: too long or contains control characters")
        start = _as_date("date_from", date_from)
        end = _as_date("date_to", date_to)
        if start and end and start > end:
            raise QueryParameterError(f"date range: date_from {start} is after date_to {end}")
        return cls(tenant_id=tenant_id, date_from=start, date_to=end)


def _as_date(label: str, value: dt.date | str | None) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        raise QueryParameterError(f"{label} {value!r}: expected a date (YYYY-MM-DD), not a timestamp")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as error:
            raise QueryParameterError(f"{label} {value!r}: not a valid calendar date ({error})") from None
    raise QueryParameterError(f"{label} {value!r}: expected a date as YYYY-MM-DD")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    line: int  # line of the `-- name:` marker in the file
    view: str | None  # the view's name when the statement is CREATE VIEW
    has_params: bool

    @property
    def is_view(self) -> bool:
        return self.view is not None


class QueryFile:
    """The parsed file: named queries in file order."""

    def __init__(self, queries: list[NamedQuery], source: str = "athena-queries.sql") -> None:
        self.source = source
        self._queries = {q.name: q for q in queries}

    @property
    def names(self) -> list[str]:
        return list(self._queries)

    def __getitem__(self, name: str) -> NamedQuery:
        try:
            return self._queries[name]
        except KeyError:
            raise QueryParameterError(
                f"unknown query {name!r}: {self.source} defines {', '.join(self._queries)}"
            ) from None

    def views(self) -> list[NamedQuery]:
        """The view definitions (CREATE VIEW statements), in file order: run these first."""
        return [q for q in self._queries.values() if q.is_view]

    def selects(self) -> list[NamedQuery]:
        """The queries that return rows (everything but the views), in file order."""
        return [q for q in self._queries.values() if not q.is_view]

    def bind_expression(
        self,
        name: str,
        params: QueryParams | None = None,
        *,
        inline_views: bool = False,
        read_from: str | None = None,
    ) -> exp.Expression:
        """The query's syntax tree (Athena dialect) with its ``params`` literals replaced.

        ``inline_views=True`` adds each view of the file the query reads as a CTE, so the query runs
        where the views were never created (e.g. a fresh Athena database). ``read_from`` names a view of the
        file that replaces the state the queries read (:data:`STATE_VIEW`), e.g. ``compras_actuales`` to run a
        query over the raw JSON changes instead of the compacted table (both views have the same columns).
        """
        query = self[name]
        tree = sqlglot.parse_one(query.sql, read=DIALECT)
        if params is not None and params != QueryParams():
            if not query.has_params:
                raise QueryParameterError(f"query {name!r} takes no parameters (it has no `{PARAMS_CTE}` CTE)")
            _bind_params(tree, params, name)
        if read_from is not None and read_from != STATE_VIEW and not query.is_view:
            self._read_from(tree, read_from, name)
        if inline_views and not query.is_view:
            tree = self._inline_views(tree, name)
        return tree

    def bind(
        self,
        name: str,
        params: QueryParams | None = None,
        *,
        inline_views: bool = False,
        read_from: str | None = None,
    ) -> str:
        """The query's SQL (Athena dialect) with its parameters bound."""
        tree = self.bind_expression(name, params, inline_views=inline_views, read_from=read_from)
        return tree.sql(dialect=DIALECT, pretty=True)

    def _read_from(self, tree: exp.Expression, view: str, name: str) -> None:
        if view not in {v.view for v in self.views()}:
            raise QueryParameterError(f"read_from {view!r}: not a view of {self.source}")
        tables = [t for t in tree.find_all(exp.Table) if t.name == STATE_VIEW and not t.args.get("db")]
        if not tables:
            raise QueryParameterError(f"query {name!r} does not read {STATE_VIEW}, so read_from does not apply")
        for table in tables:
            table.set("this", exp.to_identifier(view))

    def _inline_views(self, tree: exp.Expression, name: str) -> exp.Expression:
        used = {t.name for t in tree.find_all(exp.Table) if not t.args.get("db")}
        existing = {cte.alias for cte in tree.find_all(exp.CTE)}
        for view in reversed(self.views()):
            if view.view not in used:
                continue
            if view.view in existing:
                raise QueryFileError(f"query {name!r} defines a CTE named like the view {view.view!r}")
            body = sqlglot.parse_one(view.sql, read=DIALECT).expression
            cte = exp.CTE(this=body.copy(), alias=exp.TableAlias(this=exp.to_identifier(view.view)))
            with_ = tree.args.get("with_") or tree.args.get("with")
            if with_ is None:
                tree.set("with_" if "with_" in tree.arg_types else "with", exp.With(expressions=[cte]))
            else:
                with_.set("expressions", [cte, *with_.expressions])
        return tree


def _literal_for(column: str, params: QueryParams) -> exp.Expression:
    if column == "tenant_id":
        value = exp.null() if params.tenant_id is None else exp.Literal.string(params.tenant_id)
        return exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
    if column == "date_from":
        return exp.Literal.string((params.date_from or dt.date(1970, 1, 1)).isoformat())
    if column == "date_to":
        return exp.Literal.string((params.date_to or dt.date(9999, 12, 31)).isoformat())
    raise QueryParameterError(f"unknown parameter column {column!r} in the `{PARAMS_CTE}` CTE")


def _params_select(tree: exp.Expression) -> exp.Select | None:
    for cte in tree.find_all(exp.CTE):
        if cte.alias == PARAMS_CTE and isinstance(cte.this, exp.Select):
            return cte.this
    return None


def _bind_params(tree: exp.Expression, params: QueryParams, name: str) -> None:
    select = _params_select(tree)
    if select is None:  # checked when the file is parsed; defensive
        raise QueryParameterError(f"query {name!r} has no `{PARAMS_CTE}` CTE")
    projections = []
    for projection in select.expressions:
        column = projection.alias_or_name
        projections.append(exp.alias_(_literal_for(column, params), column))
    select.set("expressions", projections)


def _split(text: str, source: str) -> list[tuple[str, int, list[str]]]:
    """(name, line number, body lines) per `-- name:` marker."""
    blocks: list[tuple[str, int, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line)
        if match:
            name = match.group("name")
            if not _VALID_NAME.match(name):
                raise QueryFileError(f"{source}:{number}: query name {name!r} must match [a-z_][a-z0-9_]*")
            blocks.append((name, number, []))
        elif blocks:
            blocks[-1][2].append(line)
    if not blocks:
        raise QueryFileError(f"{source}: no `-- name: <id>` line, so no queries")
    return blocks


def parse(text: str, source: str = "athena-queries.sql") -> QueryFile:
    """Parse the file's text; every statement is checked by sqlglot (Athena dialect)."""
    queries: list[NamedQuery] = []
    seen: set[str] = set()
    for name, line, body in _split(text, source):
        if name in seen:
            raise QueryFileError(f"{source}:{line}: query name {name!r} is used twice")
        seen.add(name)
        description: list[str] = []
        rest = list(body)
        while rest and (rest[0].startswith("--") or not rest[0].strip()):
            comment = rest.pop(0)
            if comment.startswith("--"):
                description.append(comment[2:].strip())
        sql = "\n".join(rest).strip().rstrip(";").strip()
        if not sql:
            raise QueryFileError(f"{source}:{line}: query {name!r} has no SQL")
        try:
            statements = sqlglot.parse(sql, read=DIALECT)
        except sqlglot.errors.ParseError as error:
            raise QueryFileError(f"{source}:{line}: query {name!r} is not valid Athena SQL: {error}") from None
        if len([s for s in statements if s is not None]) != 1:
            raise QueryFileError(f"{source}:{line}: query {name!r} must be exactly one statement")
        tree = statements[0]
        view = None
        if isinstance(tree, exp.Create):
            if (tree.args.get("kind") or "").upper() != "VIEW":
                raise QueryFileError(f"{source}:{line}: query {name!r}: only CREATE VIEW statements are allowed")
            view = tree.this.name
        elif not isinstance(tree, exp.Query):
            raise QueryFileError(f"{source}:{line}: query {name!r} must be a SELECT/WITH query or a CREATE VIEW")
        params = _params_select(tree)
        if params is not None:
            columns = {p.alias_or_name for p in params.expressions}
            expected = {"tenant_id", "date_from", "date_to"}
            if columns != expected:
                raise QueryFileError(
                    f"{source}:{line}: query {name!r}: the `{PARAMS_CTE}` CTE must define exactly "
                    f"{sorted(expected)}, found {sorted(columns)}"
                )
        queries.append(
            NamedQuery(
                name=name,
                description=" ".join(description),
                sql=sql,
                line=line,
                view=view,
                has_params=params is not None,
            )
        )
    return QueryFile(queries, source)


def load(path: Path | str | None = None) -> QueryFile:
    """Read and parse athena-queries.sql (default: :func:`default_path`)."""
    file = Path(path) if path is not None else default_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise QueryFileError(f"cannot read the query file {file}: {error}") from None
    return parse(text, str(file.name))
