"""S3 key layout of the exported purchase documents, and the reversible id encoding it relies on.

Layout (prefix from config ``prefixes.compras``)::

    compras/{enc tenant_id}/{yyyy}/{mm}/{dd}/{event}_{enc compra_id}_{yyyymmdd_HHMMSS}_{sequence}.json

* ``event`` is the stream record's eventName in lower case (``insert``, ``modify``, ``remove``), the
  file naming of the original design; the document's ``metadata.event_name`` keeps the upper-case
  stream name. ``parse_object_key`` also reads the upper-case names written by earlier versions
  (``INSERT_…``) and always reports the upper-case stream name.
* ``yyyy/mm/dd`` is the purchase's ``fecha`` (UTC), so every version of a purchase lands in the same
  partition; ``yyyymmdd_HHMMSS`` is the stream record's ApproximateCreationDateTime (UTC) and
  ``sequence`` its DynamoDB Streams sequence number: the key is a pure function of the record, so a
  retried batch overwrites its objects and never duplicates them.

Id encoding (``encode_id`` / ``decode_id``): ids are stored in DynamoDB exactly as given, so they may
contain ``/``, ``..``, spaces, non-ASCII or anything else. In a key segment every character outside
``[A-Za-z0-9_-]`` is replaced by its UTF-8 bytes, each written ``~XX`` (two upper-case hex digits);
``~`` itself is escaped (``~7E``) so the mapping is reversible, and ``.`` is always escaped so no
segment can be ``.``/``..``. Examples: ``store-1`` -> ``store-1``; ``a/b`` -> ``a~2Fb``;
``..`` -> ``~2E~2E``; ``Tienda Ñ`` -> ``Tienda~20~C3~91``. An encoded id therefore never contains
``/``, ``.``, spaces, control or non-ASCII characters and can never leave its own path segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from lambdas.domain import limits

ESCAPE = "~"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ENCODED = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
_ESCAPE_SEQ = re.compile(r"~([0-9A-F]{2})")

EVENT_NAMES = limits.EVENT_NAMES
# The event name as written in a key: lower case, as in the original design's insert_{compra_id}_... files.
KEY_EVENT_NAMES = {name: name.lower() for name in EVENT_NAMES}
# Keys written before the lower-case layout carried the upper-case stream names: still parsed.
_PARSED_EVENT_NAMES = {**{key: name for name, key in KEY_EVENT_NAMES.items()}, **{name: name for name in EVENT_NAMES}}
# S3 limits keys to 1,024 bytes of UTF-8; an encoded key is pure ASCII.
MAX_KEY_LENGTH = limits.S3_MAX_KEY_BYTES
FECHA_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"


class InvalidIdError(ValueError):
    """An id cannot be encoded (empty) or a key segment is not a valid encoding."""


class InvalidObjectKeyError(ValueError):
    """A key does not follow the layout of the exported documents, or would be too long."""


def encode_id(value: str) -> str:
    """Encode an id into one safe key segment (see the module docstring for the scheme)."""
    if not isinstance(value, str) or value == "":
        raise InvalidIdError(f"cannot encode id {value!r}: ids must be non-empty strings")
    out: list[str] = []
    for char in value:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"{ESCAPE}{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_id(segment: str) -> str:
    """Inverse of ``encode_id``; rejects anything ``encode_id`` cannot have produced."""
    if not isinstance(segment, str) or not _ENCODED.fullmatch(segment):
        raise InvalidIdError(
            f"key segment {segment!r} is not an encoded id: only [A-Za-z0-9_-] and ~XX escapes may appear"
        )
    raw = bytearray()
    position = 0
    for match in _ESCAPE_SEQ.finditer(segment):
        raw.extend(segment[position : match.start()].encode("ascii"))
        raw.append(int(match.group(1), 16))
        position = match.end()
    raw.extend(segment[position:].encode("ascii"))
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidIdError(f"key segment {segment!r} does not decode to UTF-8 text: {exc}") from exc
    if encode_id(decoded) != segment:
        # e.g. "~41" for "A": a valid id has exactly one encoding.
        raise InvalidIdError(f"key segment {segment!r} is not the canonical encoding of {decoded!r}")
    return decoded


def parse_fecha(fecha: str) -> datetime:
    """A purchase's ``fecha`` ("YYYY-MM-DD HH:MM:SS", UTC) as an aware datetime."""
    try:
        return datetime.strptime(fecha, FECHA_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fecha {fecha!r} is not 'YYYY-MM-DD HH:MM:SS'") from exc


def partition_values(tenant_id: str, fecha: str) -> tuple[str, str, str, str]:
    """The Glue partition values (tenant_id, year, month, day) of a purchase: the REAL tenant id."""
    when = parse_fecha(fecha)
    return (tenant_id, f"{when.year:04d}", f"{when.month:02d}", f"{when.day:02d}")


def partition_prefix(tenant_id: str, year: str, month: str, day: str, prefix: str = "compras/") -> str:
    """The key prefix of one partition (ends with '/'), with the tenant id encoded."""
    return f"{_normalize_prefix(prefix)}{encode_id(tenant_id)}/{year}/{month}/{day}/"


def object_key(
    *,
    event_name: str,
    tenant_id: str,
    compra_id: str,
    fecha: str,
    approximate_creation_time: datetime,
    sequence_number: str,
    prefix: str = "compras/",
) -> str:
    """The key of the document of one stream record: a pure function of the record."""
    if event_name not in EVENT_NAMES:
        raise InvalidObjectKeyError(f"event name {event_name!r} is not one of {', '.join(EVENT_NAMES)}")
    if not sequence_number or not sequence_number.isdigit():
        raise InvalidObjectKeyError(f"sequence number {sequence_number!r} is not a string of digits")
    if approximate_creation_time.tzinfo is None:
        raise InvalidObjectKeyError("approximate_creation_time must be timezone-aware (UTC)")
    stamp = approximate_creation_time.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)
    _, year, month, day = partition_values(tenant_id, fecha)
    key = (
        f"{partition_prefix(tenant_id, year, month, day, prefix)}"
        f"{KEY_EVENT_NAMES[event_name]}_{encode_id(compra_id)}_{stamp}_{sequence_number}.json"
    )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidObjectKeyError(
            f"key for tenant_id {tenant_id!r} / compra_id {compra_id!r} would be {len(key)} characters long "
            f"once encoded; S3 allows {MAX_KEY_LENGTH}"
        )
    return key


@dataclass(frozen=True)
class ObjectKey:
    """A parsed document key, ids decoded."""

    tenant_id: str
    year: str
    month: str
    day: str
    event_name: str  # the stream event name, upper case (INSERT/MODIFY/REMOVE) like metadata.event_name
    compra_id: str
    timestamp: str  # yyyymmdd_HHMMSS, from ApproximateCreationDateTime
    sequence_number: str

    @property
    def partition(self) -> tuple[str, str, str, str]:
        return (self.tenant_id, self.year, self.month, self.day)


def parse_object_key(key: str, prefix: str = "compras/") -> ObjectKey:
    """Split a document key back into its parts (ids decoded). Raises InvalidObjectKeyError."""
    prefix = _normalize_prefix(prefix)
    pattern = re.compile(
        re.escape(prefix)
        + r"(?P<tenant>[^/]+)/(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/"
        + r"(?P<event>"
        + "|".join(_PARSED_EVENT_NAMES)
        + r")_(?P<compra>[^/]+)_(?P<ts>\d{8}_\d{6})_(?P<seq>\d+)\.json"
    )
    match = pattern.fullmatch(key)
    if not match:
        raise InvalidObjectKeyError(
            f"key {key!r} does not match {prefix}{{tenant}}/{{yyyy}}/{{mm}}/{{dd}}/"
            "{event}_{compra_id}_{yyyymmdd_HHMMSS}_{sequence}.json (event: insert, modify or remove)"
        )
    try:
        tenant_id = decode_id(match["tenant"])
        compra_id = decode_id(match["compra"])
    except InvalidIdError as exc:
        raise InvalidObjectKeyError(f"key {key!r}: {exc}") from exc
    return ObjectKey(
        tenant_id=tenant_id,
        year=match["year"],
        month=match["month"],
        day=match["day"],
        event_name=_PARSED_EVENT_NAMES[match["event"]],
        compra_id=compra_id,
        timestamp=match["ts"],
        sequence_number=match["seq"],
    )


def _normalize_prefix(prefix: str) -> str:
    return prefix if prefix.endswith("/") or prefix == "" else prefix + "/"
