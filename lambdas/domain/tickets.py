"""Tickets CSV: streaming decoding, header detection and row validation (pure Python, no AWS).

The contract is documented in docs/csv-contract.md. In short:

* UTF-8 with or without BOM; the bytes arrive in chunks and are decoded incrementally, so a file of any
  size is read with bounded memory. gzip/ZIP/UTF-16 bytes, an empty file or a header that is not UTF-8
  reject the whole file (:class:`FileRejected`); invalid UTF-8 inside a data row rejects only that row.
* Delimiter ``,`` or ``;`` detected from the header; header names trimmed and case-insensitive.
* Quoted fields and embedded newlines (the csv module); a record's line number is the physical line where
  it starts.
* Every data row becomes either a :class:`TicketLine` (validated, normalised) or a :class:`RowRejection`
  (line number and reason). Good rows never depend on bad ones.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

REQUIRED_COLUMNS = ("ticket_id", "product", "basket_id", "timestamp", "category", "quantity", "store")
OPTIONAL_COLUMNS = ("unit_price", "user_id", "product_code", "currency")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# Limits that follow from where the values end up (DynamoDB keys, the Glue/Athena column types in
# config/pipeline.yml `catalog`: cantidad int, precio_unitario decimal(18,4)).
MAX_PARTITION_KEY_BYTES = 2048  # DynamoDB partition key limit (tenant_id = store)
MAX_SORT_KEY_BYTES = 1024  # DynamoDB sort key limit (compra_id = basket_id)
MAX_QUANTITY = 2**31 - 1  # Athena `int`
PRICE_MAX_INTEGER_DIGITS = 14  # decimal(18,4)
PRICE_MAX_DECIMALS = 4
FIELD_SIZE_LIMIT = 131072  # characters per field (the csv module's default, made explicit)
READ_CHUNK_BYTES = 1024 * 1024
_MAGIC_BYTES = 1024  # how much of the start is inspected for gzip/ZIP/UTF-16/NUL bytes

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, CR, LF allowed in text
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_INTEGER = re.compile(r"\+?[0-9]+")
_DECIMAL = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"\+?[0-9]+,[0-9]+")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_HAS_TIME = re.compile(r"\d{4}-?\d{2}-?\d{2}[T ]\d{2}")


class FileRejected(Exception):
    """The file as a whole cannot be ingested; ``reason`` says why (it goes to the report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TicketLine:
    """One valid, normalised CSV row (a product line of a purchase)."""

    line: int
    store: str
    basket_id: str
    ticket_id: str
    codigo: str
    nombre: str
    categoria: str
    cantidad: int
    precio_unitario: Decimal | None
    fecha: str  # "YYYY-MM-DD HH:MM:SS", UTC
    user_id: str | None
    moneda: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.store, self.basket_id)

    def content(self) -> tuple:
        """Everything but the line number: two rows with equal content are the same ticket line."""
        return (
            self.store,
            self.basket_id,
            self.ticket_id,
            self.codigo,
            self.nombre,
            self.categoria,
            self.cantidad,
            self.precio_unitario,
            self.fecha,
            self.user_id,
            self.moneda,
        )


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    reason: str


# --------------------------------------------------------------------------------------------------
# Bytes -> physical lines
# --------------------------------------------------------------------------------------------------


class TextLines:
    """Iterate UTF-8 byte chunks as physical text lines (line endings kept, as the csv module needs).

    Invalid UTF-8 is decoded with ``surrogateescape``; the physical line numbers that contain such bytes
    are collected in :attr:`invalid_lines` so the parser can reject those rows (only the header being
    undecodable rejects the file).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.invalid_lines: set[int] = set()
        self.lines_read = 0

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")  # BOM optional
        carry = ""  # an unfinished line (or a lone "\r" that may be the first half of "\r\n")
        head = b""  # the first bytes, until there are enough to recognise gzip/ZIP/UTF-16/binary
        started = False
        for chunk in self._chunks:
            if not started:
                head += chunk
                if len(head) < _MAGIC_BYTES:
                    continue
                _check_magic(head)
                started, chunk = True, head
            text = carry + decoder.decode(chunk)
            lines, carry = _split_lines(text)
            yield from self._emit(lines, text)
        if not started:
            if not head:
                raise FileRejected("the file is empty (0 bytes)")
            _check_magic(head)
        text = carry + decoder.decode(head if not started else b"", final=True)
        lines, carry = _split_lines(text)
        if carry:
            lines.append(carry)
        yield from self._emit(lines, text)

    def _emit(self, lines: list[str], text: str) -> Iterator[str]:
        if _SURROGATE.search(text) is None:
            self.lines_read += len(lines)
            yield from lines
            return
        for line in lines:
            self.lines_read += 1
            if _SURROGATE.search(line):
                self.invalid_lines.add(self.lines_read)
            yield line


_COMPLETE_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)")


def _split_lines(text: str) -> tuple[list[str], str]:
    """Complete physical lines (terminator kept) and the unfinished rest.

    Lines end at \\r\\n, \\n or \\r only (str.splitlines would also split at \\x0b, \\x1c, \\u2028 ...).
    A trailing "\\r" stays in the rest: the next chunk may start with its "\\n".
    """
    if "\r" not in text:
        pieces = text.split("\n")
        rest = pieces.pop()
        return [piece + "\n" for piece in pieces], rest
    if text.endswith("\r"):
        lines, rest = _split_lines(text[:-1])
        return lines, rest + "\r"
    lines = _COMPLETE_LINE.findall(text)
    return lines, text[sum(map(len, lines)) :]


def _check_magic(head: bytes) -> None:
    if head.startswith(b"\x1f\x8b"):
        raise FileRejected("the file is gzip-compressed: upload the plain CSV text (UTF-8), not a .gz")
    if head.startswith(b"PK\x03\x04"):
        raise FileRejected("the file is a ZIP archive (an Excel workbook?): export it as CSV (UTF-8)")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRejected("the file is UTF-16 encoded: save it as UTF-8")
    if b"\x00" in head[:_MAGIC_BYTES]:
        raise FileRejected("the file contains NUL bytes near its start: it is binary or UTF-16/32, not UTF-8 CSV")


# --------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    delimiter: str
    columns: tuple[str, ...]  # normalised names, in file order
    index: dict[str, int]  # known column -> position


def parse_header(line: str) -> Header:
    """Detect the delimiter (`,` or `;`) and validate the header line."""
    if _SURROGATE.search(line):
        position = _SURROGATE.search(line).start()
        raise FileRejected(
            f"the header (line 1) is not valid UTF-8 (undecodable byte at character {position + 1}): "
            "save the file as UTF-8"
        )
    if "\x00" in line:
        raise FileRejected("the header (line 1) contains NUL bytes: the file is binary or UTF-16/32, not UTF-8 CSV")
    stripped = line.strip()
    if not stripped:
        raise FileRejected("the header (line 1) is empty: the first line must name the columns")
    best: tuple[int, str, list[str]] | None = None
    for delimiter in (",", ";"):
        names = [n.strip().lower() for n in next(csv.reader([stripped], delimiter=delimiter))]
        found = sum(1 for c in REQUIRED_COLUMNS if c in names)
        if best is None or found > best[0]:
            best = (found, delimiter, names)
    assert best is not None
    _, delimiter, names = best
    duplicates = sorted({n for n in names if n and names.count(n) > 1})
    if duplicates:
        raise FileRejected(f"the header (line 1) repeats column(s) {', '.join(duplicates)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise FileRejected(
            f"the header (line 1) lacks required column(s) {', '.join(missing)} "
            f"(found: {', '.join(n or '<empty>' for n in names)}; delimiter ',' or ';')"
        )
    return Header(
        delimiter=delimiter,
        columns=tuple(names),
        index={name: i for i, name in enumerate(names) if name in KNOWN_COLUMNS},
    )


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


def parse_tickets(chunks: Iterable[bytes]) -> Iterator[TicketLine | RowRejection]:
    """Stream the rows of a tickets CSV given as byte chunks.

    Raises :class:`FileRejected` (before yielding anything) when the file as a whole is unusable.
    Blank lines are skipped silently.
    """
    text = TextLines(chunks)
    lines = iter(text)
    try:
        first = next(lines)
    except StopIteration:
        raise FileRejected("the file is empty (no header line)") from None
    if not first.strip():
        # Leading blank line(s): the header must be the first line.
        rest_blank = all(not line.strip() for line in lines)
        if rest_blank:
            raise FileRejected("the file is empty (only blank lines)")
        raise FileRejected("line 1 is blank: the first line must be the header naming the columns")
    header = parse_header(first)
    return _rows(header, text, lines)


def _rows(header: Header, text: TextLines, lines: Iterator[str]) -> Iterator[TicketLine | RowRejection]:
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    reader = csv.reader(lines, delimiter=header.delimiter)
    validator = _RowValidator(header)
    expected = len(header.columns)
    saw_data = False
    consumed = 1  # physical lines consumed so far (the header)
    while True:
        start = consumed + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            consumed = reader.line_num + 1
            saw_data = True
            yield RowRejection(start, f"unreadable CSV record: {exc}")
            continue
        consumed = reader.line_num + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        saw_data = True
        end = consumed
        if text.invalid_lines and any(n in text.invalid_lines for n in range(start, end + 1)):
            yield RowRejection(start, "the row is not valid UTF-8 (undecodable bytes): save the file as UTF-8")
            continue
        if len(fields) != expected:
            span = f" (the record spans lines {start}-{end}: an unbalanced quote?)" if end > start else ""
            yield RowRejection(
                start,
                f"expected {expected} fields (delimiter {header.delimiter!r}), got {len(fields)}{span}",
            )
            continue
        yield validator.validate(start, fields)
    if not saw_data:
        raise FileRejected("the file has a header but no data rows")


class _RowValidator:
    def __init__(self, header: Header) -> None:
        self.header = header
        self.decimal_comma = header.delimiter == ";"
        # Position of every known column; an absent optional column reads the "" appended to each row.
        self.positions = tuple(header.index.get(name, -1) for name in KNOWN_COLUMNS)

    def validate(self, line: int, fields: list[str]) -> TicketLine | RowRejection:
        fields.append("")
        (ticket_id, product, basket_id, timestamp, category, quantity, store, unit_price, user_id, code, currency) = [
            fields[i].strip() for i in self.positions
        ]
        problems: list[str] = []

        store = self._id(store, "store", problems, MAX_PARTITION_KEY_BYTES)
        basket_id = self._id(basket_id, "basket_id", problems, MAX_SORT_KEY_BYTES)
        ticket_id = self._id(ticket_id, "ticket_id", problems, MAX_SORT_KEY_BYTES)
        nombre = self._text(product, "product", problems, required=True)
        categoria = self._text(category, "category", problems, required=True)
        codigo = self._text(code, "product_code", problems, required=False) or nombre
        cantidad = self._quantity(quantity, problems)
        precio = self._price(unit_price, problems)
        fecha = self._timestamp(timestamp, problems)
        user = self._optional_id(user_id, "user_id", problems)
        moneda = self._currency(currency, problems)

        if problems:
            return RowRejection(line, "; ".join(problems))
        return TicketLine(
            line,
            store,
            basket_id,
            ticket_id,
            codigo,
            nombre,
            categoria,
            cantidad,  # type: ignore[arg-type]
            precio,
            fecha,  # type: ignore[arg-type]
            user,
            moneda,
        )

    @staticmethod
    def _id(value: str, name: str, problems: list[str], max_bytes: int) -> str:
        if not value:
            problems.append(f"{name} is empty")
        elif _CONTROL.search(value):
            problems.append(f"{name} contains a control character (e.g. a line break or tab)")
        elif len(value) * 4 > max_bytes and len(value.encode("utf-8")) > max_bytes:
            problems.append(f"{name} is longer than {max_bytes} bytes")
        return value

    @staticmethod
    def _optional_id(value: str, name: str, problems: list[str]) -> str | None:
        if not value:
            return None
        if _CONTROL.search(value):
            problems.append(f"{name} contains a control character (e.g. a line break or tab)")
        return value

    @staticmethod
    def _text(value: str, name: str, problems: list[str], *, required: bool) -> str:
        if not value:
            if required:
                problems.append(f"{name} is empty")
        elif _CONTROL_IN_TEXT.search(value):
            problems.append(f"{name} contains a control character")
        return value

    @staticmethod
    def _quantity(value: str, problems: list[str]) -> int | None:
        if not value:
            problems.append("quantity is empty")
            return None
        if not _INTEGER.fullmatch(value):
            problems.append(f"quantity {_show(value)} is not a whole number")
            return None
        quantity = int(value)
        if quantity <= 0:
            problems.append(f"quantity {_show(value)} must be greater than 0")
        elif quantity > MAX_QUANTITY:
            problems.append(f"quantity {_show(value)} is larger than {MAX_QUANTITY}")
        return quantity

    def _price(self, value: str, problems: list[str]) -> Decimal | None:
        if not value:
            return None
        text = value
        if self.decimal_comma and _DECIMAL_COMMA.fullmatch(value):
            text = value.replace(",", ".")
        if value.startswith("-"):
            problems.append(f"unit_price {_show(value)} must not be negative")
            return None
        if not _DECIMAL.fullmatch(text):
            problems.append(f"unit_price {_show(value)} is not a decimal number (e.g. 12.50)")
            return None
        try:
            price = Decimal(text.lstrip("+"))
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            problems.append(f"unit_price {_show(value)} is not a decimal number")
            return None
        integer_part, _, decimals = text.lstrip("+").partition(".")
        if len(integer_part.lstrip("0")) > PRICE_MAX_INTEGER_DIGITS:
            problems.append(f"unit_price {_show(value)} has more than {PRICE_MAX_INTEGER_DIGITS} integer digits")
            return None
        if len(decimals.rstrip("0")) > PRICE_MAX_DECIMALS:
            problems.append(f"unit_price {_show(value)} has more than {PRICE_MAX_DECIMALS} decimal places")
            return None
        return canonical_decimal(price)

    @staticmethod
    def _timestamp(value: str, problems: list[str]) -> str | None:
        if not value:
            problems.append("timestamp is empty")
            return None
        result = parse_timestamp(value)
        if result is None:
            problems.append(
                f"timestamp {_show(value)} is not ISO 8601 or 'YYYY-MM-DD HH:MM:SS' (a date and a time are needed)"
            )
        return result

    @staticmethod
    def _currency(value: str, problems: list[str]) -> str | None:
        if not value:
            return None
        if not _CURRENCY.fullmatch(value):
            problems.append(f"currency {_show(value)} is not a 3-letter ISO 4217 code (e.g. EUR)")
            return None
        return value.upper()


def parse_timestamp(value: str) -> str | None:
    """ISO 8601 or 'YYYY-MM-DD HH:MM:SS' -> 'YYYY-MM-DD HH:MM:SS' in UTC (None when invalid).

    A timestamp without offset is taken as UTC; with an offset (or Z) it is converted to UTC. Fractions
    of a second are truncated. A date alone is not a timestamp.
    """
    if not _HAS_TIME.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if len(value) == 19 and value[4] == "-":  # already YYYY-MM-DD[ T]HH:MM:SS (the common case)
        return value if value[10] == " " else f"{value[:10]} {value[11:]}"
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def canonical_decimal(value: Decimal) -> Decimal:
    """One representation per number (1.50 -> 1.5, 100.0 -> 100), never in exponent form."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _show(value: str, limit: int = 40) -> str:
    """A value quoted for an error message, shortened (reports never carry whole customer rows)."""
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)
