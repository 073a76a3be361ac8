"""Every limit of an accepted value, derived in one place from where the value ends up (pure Python).

"Accepted" means "in Athena": a row the ingestion loads must become a DynamoDB item, an export document
whose S3 key fits, a Glue partition and column values the table's declared types can hold. So the
limits are derived here from those destinations, and ingestion (lambdas/domain/tickets.py,
lambdas/domain/purchases.py), the stream export (lambdas/domain/documents.py, keys.py) and the property
test (tests/lambdas/domain/test_limits.py) all read them from this module:

* the export object key ``{prefix}{enc tenant}/{yyyy}/{mm}/{dd}/{event}_{enc compra}_{yyyymmdd_HHMMSS}_{seq}.json``
  (ids ``~XX``-encoded, lambdas/domain/keys.py) must fit S3's 1,024 bytes: the encoded store and basket
  ids share what the fixed parts leave (:func:`id_budget`), whatever the prefix (up to
  :data:`MAX_PREFIX_BYTES`), the event name (either case) and the sequence number (up to 40 digits);
* the Glue partition value ``tenant_id`` (the real store id) at most 1,024 bytes; DynamoDB's key limits
  (2,048 / 1,024 bytes) are looser and follow;
* the Glue column types of config/pipeline.yml ``catalog.columns`` (:data:`GLUE_TYPES`, checked against
  the config by tests/lambdas/domain/test_limits.py): ``int`` quantities and counts, ``decimal(18,4)``
  prices and totals;
* a CSV record (:data:`MAX_ROW_CHARS`) and the header (:data:`MAX_HEADER_CHARS`) bound the memory of
  parsing whatever the input; a row longer than a DynamoDB item could never be stored anyway;
* the ingest report key ``{reports prefix}{upload key without the uploads prefix}.report.json``
  (:func:`report_key`) always fits S3's limit: a name too long is shortened and made unique by a hash.

docs/csv-contract.md lists the limits for users; nothing else in the code hard-codes them.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

# --- destinations ------------------------------------------------------------------------------------
S3_MAX_KEY_BYTES = 1024  # S3 object keys: 1,024 bytes of UTF-8
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024  # one purchase = one item
DYNAMODB_MAX_PARTITION_KEY_BYTES = 2048  # tenant_id
DYNAMODB_MAX_SORT_KEY_BYTES = 1024  # compra_id
GLUE_MAX_PARTITION_VALUE_BYTES = 1024  # PartitionInput.Values[]: tenant_id, year, month, day

# The Glue column types the exported numbers land in (config/pipeline.yml catalog.columns; a test keeps
# them equal). Bounds below are derived from these strings, not written twice.
GLUE_TYPES = {
    "productos.cantidad": "int",
    "productos.precio_unitario": "decimal(18,4)",
    "resumen.total_productos": "int",
    "resumen.total_cantidad": "int",
    "resumen.total_precio": "decimal(18,4)",
}

# --- the export key ------------------------------------------------------------------------------------
MAX_PREFIX_BYTES = 64  # prefixes.compras of config/pipeline.yml (checked there) and keys.object_key
EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")  # DynamoDB Streams eventName (a key may write them in lower case)
MAX_SEQUENCE_NUMBER_DIGITS = 40  # DynamoDB Streams sequence numbers: 21 to 40 digits
_DATE_PATH_BYTES = len("/yyyy/mm/dd/")
_KEY_STAMP_BYTES = len("_yyyymmdd_HHMMSS_")
_KEY_SUFFIX_BYTES = len(".json")

# --- CSV parsing ----------------------------------------------------------------------------------------
MAX_ROW_CHARS = DYNAMODB_MAX_ITEM_BYTES  # one record (all its physical lines): no longer row can be stored
MAX_HEADER_CHARS = 64 * 1024  # the header line; ample for any real column list, and bounds header checks
MIN_YEAR, MAX_YEAR = 1000, 9999  # fecha is "YYYY-MM-DD HH:MM:SS" (4-digit years), in UTC

# --- ingest reports ----------------------------------------------------------------------------------------
REPORT_SUFFIX = ".report.json"
_REPORT_HASH_CHARS = 16


def _int_max(glue_type: str) -> int:
    if glue_type == "int":
        return 2**31 - 1
    if glue_type == "bigint":
        return 2**63 - 1
    raise ValueError(f"not an integer Glue type: {glue_type!r}")


_DECIMAL_TYPE = re.compile(r"decimal\((\d+),(\d+)\)")


def _decimal_bounds(glue_type: str) -> tuple[int, int]:
    match = _DECIMAL_TYPE.fullmatch(glue_type.replace(" ", ""))
    if not match:
        raise ValueError(f"not a decimal Glue type: {glue_type!r}")
    precision, scale = int(match[1]), int(match[2])
    return precision - scale, scale


MAX_QUANTITY = _int_max(GLUE_TYPES["productos.cantidad"])  # one line
MAX_TOTAL_QUANTITY = _int_max(GLUE_TYPES["resumen.total_cantidad"])  # one purchase
MAX_PRODUCT_LINES = _int_max(GLUE_TYPES["resumen.total_productos"])
PRICE_MAX_INTEGER_DIGITS, PRICE_MAX_DECIMALS = _decimal_bounds(GLUE_TYPES["productos.precio_unitario"])
_TOTAL_INTEGER_DIGITS, TOTAL_MAX_DECIMALS = _decimal_bounds(GLUE_TYPES["resumen.total_precio"])
MAX_TOTAL_PRICE = Decimal(10) ** _TOTAL_INTEGER_DIGITS - Decimal(1).scaleb(-TOTAL_MAX_DECIMALS)  # 99…9.9999
MAX_PRICE = Decimal(10) ** PRICE_MAX_INTEGER_DIGITS - Decimal(1).scaleb(-PRICE_MAX_DECIMALS)


def id_budget() -> int:
    """Bytes the ENCODED tenant_id and compra_id may take together in an export key, whatever the prefix
    (up to MAX_PREFIX_BYTES), the event name and the sequence number (up to 40 digits)."""
    event = max(len(name) for name in EVENT_NAMES)
    fixed = MAX_PREFIX_BYTES + _DATE_PATH_BYTES + event + 1 + _KEY_STAMP_BYTES + MAX_SEQUENCE_NUMBER_DIGITS
    return S3_MAX_KEY_BYTES - fixed - _KEY_SUFFIX_BYTES


ID_BUDGET = id_budget()

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]*")


def encoded_length(value: str) -> int:
    """len(keys.encode_id(value)) without building it: a safe character stays, any other becomes ~XX per
    UTF-8 byte."""
    if _ALL_SAFE.fullmatch(value):
        return len(value)
    return sum(1 if char in _SAFE else 3 * len(char.encode("utf-8")) for char in value)


def id_problems(tenant_id: str, compra_id: str) -> list[str]:
    """Why a (store, basket_id) pair cannot be exported (empty list: it can). Checks the Glue partition
    value and the export key; DynamoDB's key limits are looser than both."""
    problems: list[str] = []
    if (
        len(tenant_id) * 4 > GLUE_MAX_PARTITION_VALUE_BYTES
        and (size := len(tenant_id.encode("utf-8"))) > GLUE_MAX_PARTITION_VALUE_BYTES
    ):
        problems.append(
            f"store is {size:,} bytes long: a Glue partition value (tenant_id) holds at most "
            f"{GLUE_MAX_PARTITION_VALUE_BYTES:,}"
        )
    if len(tenant_id) + len(compra_id) > ID_BUDGET // 12:  # cheap test first: 12 = most a char can take
        used = encoded_length(tenant_id) + encoded_length(compra_id)
        if used > ID_BUDGET:
            problems.append(
                f"store and basket_id take {used:,} characters in the export's S3 key once encoded "
                f"(each character outside A-Z a-z 0-9 _ - takes 3 per UTF-8 byte); together they may take "
                f"at most {ID_BUDGET:,}"
            )
    return problems


def total_problems(total_cantidad: int, total_precio: Decimal | None, lines: int) -> list[str]:
    """Why a purchase's totals do not fit the Glue types of ``resumen`` (empty list: they do)."""
    problems = []
    if lines > MAX_PRODUCT_LINES:
        problems.append(f"{lines:,} product lines: resumen.total_productos (int) holds at most {MAX_PRODUCT_LINES:,}")
    if total_cantidad > MAX_TOTAL_QUANTITY:
        problems.append(
            f"the quantities add up to {total_cantidad:,}: resumen.total_cantidad "
            f"({GLUE_TYPES['resumen.total_cantidad']}) holds at most {MAX_TOTAL_QUANTITY:,}"
        )
    if total_precio is not None and total_precio > MAX_TOTAL_PRICE:
        problems.append(
            f"unit_price x quantity adds up to {total_precio:f}: resumen.total_precio "
            f"({GLUE_TYPES['resumen.total_precio']}) holds at most {MAX_TOTAL_PRICE:f}"
        )
    return problems


def price_problem(price: Decimal) -> str | None:
    """Why a unit price does not fit ``decimal(18,4)`` (None: it does)."""
    if not price.is_finite() or price < 0:
        return "must be a number >= 0"
    if price > MAX_PRICE:
        return f"has more than {PRICE_MAX_INTEGER_DIGITS} integer digits"
    if price != price.quantize(Decimal(1).scaleb(-PRICE_MAX_DECIMALS), rounding="ROUND_DOWN"):
        return f"has more than {PRICE_MAX_DECIMALS} decimal places"
    return None


def report_key(upload_key: str, uploads_prefix: str, reports_prefix: str) -> str:
    """The ingest report key of an upload: ``{reports prefix}{name}.report.json`` where name is the upload
    key without the uploads prefix; when that would exceed S3's limit the name is cut (at a character
    boundary) and followed by ``~`` and a hash of the whole upload key, so every file gets a report key."""
    name = upload_key[len(uploads_prefix) :] if upload_key.startswith(uploads_prefix) else upload_key
    key = f"{reports_prefix}{name}{REPORT_SUFFIX}"
    if len(key.encode("utf-8")) <= S3_MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(upload_key.encode("utf-8")).hexdigest()[:_REPORT_HASH_CHARS]
    room = S3_MAX_KEY_BYTES - len(reports_prefix.encode("utf-8")) - 1 - len(digest) - len(REPORT_SUFFIX)
    cut = name.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
    return f"{reports_prefix}{cut}~{digest}{REPORT_SUFFIX}"
