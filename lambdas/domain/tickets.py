"""Tickets CSV: streaming decoding, record splitting, header detection and row validation (pure Python).

The contract (grammar and limits) is documented in docs/csv-contract.md; every limit comes from
lambdas/domain/limits.py. In short:

* UTF-8 with or without BOM; the bytes arrive in chunks and are decoded incrementally, so a file of any
  size is read with bounded memory: a physical line longer than a row may be is never held whole.
  gzip/ZIP/UTF-16 bytes, an empty file or a header that is not UTF-8 reject the whole file
  (:class:`FileRejected`); invalid UTF-8 inside a data row rejects only that row.
* Delimiter ``,`` or ``;`` detected from the header; header names trimmed and case-insensitive; the
  header is at most ``limits.MAX_HEADER_CHARS`` characters and checked in linear time.
* Records are split here (not by the csv module): RFC 4180 quoting, ``""`` inside quotes, quoted line
  breaks, spaces around a quoted field allowed, a quote inside an unquoted field kept as a character.
  Text after a closing quote (``"Pan"extra``), a quoted field never closed, a record longer than
  ``limits.MAX_ROW_CHARS`` or with the wrong number of fields reject their row with a reason; nothing
  is silently joined or cut. A record's line number is the physical line where it starts.
* Every data row becomes either a :class:`TicketLine` (validated, normalised) or a :class:`RowRejection`
  (line number and reason). Good rows never depend on bad ones. Nothing raises for bad bytes but
  :class:`FileRejected`, and only for the file as a whole.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from lambdas.domain import limits

REQUIRED_COLUMNS = ("ticket_id", "product", "basket_id", "timestamp", "category", "quantity", "store")
OPTIONAL_COLUMNS = ("unit_price", "user_id", "product_code", "currency")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

READ_CHUNK_BYTES = 1024 * 1024
_MAGIC_BYTES = 1024  # how much of the start is inspected for gzip/ZIP/UTF-16/NUL bytes

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, CR, LF allowed in text
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_INTEGER = re.compile(r"\+?[0-9]+")
_DECIMAL = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"\+?[0-9]+,[0-9]+")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


class FileRejected(Exception):
    """The file as a whole cannot be ingested; ``reason`` says why (it goes to the report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TicketLine:
    """One valid, normalised CSV row (a product line of a purchase), in the CSV's own vocabulary.

    lambdas/domain/purchases.py maps it to the item's field names (docs/item-schema.md).
    """

    line: int
    store: str
    basket_id: str
    ticket_id: str
    product_code: str  # the product_code column, or the product name when it is empty
    product: str
    category: str
    quantity: int
    unit_price: Decimal | None
    timestamp: str  # normalised: "YYYY-MM-DD HH:MM:SS", UTC
    user_id: str | None
    currency: str | None  # upper case

    @property
    def key(self) -> tuple[str, str]:
        return (self.store, self.basket_id)

    def content(self) -> tuple:
        """Everything but the line number: two rows with equal content are the same ticket line."""
        return (
            self.store,
            self.basket_id,
            self.ticket_id,
            self.product_code,
            self.product,
            self.category,
            self.quantity,
            self.unit_price,
            self.timestamp,
            self.user_id,
            self.currency,
        )


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    reason: str


# --------------------------------------------------------------------------------------------------
# Bytes -> physical lines
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overlong:
    """Stands for a physical line longer than ``limits.MAX_ROW_CHARS``: its text was dropped as it was read
    (it can never be a valid row), only its length is kept."""

    chars: int


class TextLines:
    """Iterate UTF-8 byte chunks as physical text lines (line endings kept).

    Invalid UTF-8 is decoded with ``surrogateescape``; the physical line numbers that contain such bytes
    are collected in :attr:`invalid_lines` so the parser can reject those rows (only the header being
    undecodable rejects the file). A line longer than ``max_line`` characters is yielded as an
    :class:`Overlong` instead, and never held in memory whole.
    """

    def __init__(self, chunks: Iterable[bytes], max_line: int = limits.MAX_ROW_CHARS) -> None:
        self._chunks = chunks
        self.max_line = max_line
        self.invalid_lines: set[int] = set()
        self.lines_read = 0
        self._carry = ""  # an unfinished line (or a lone "\r" that may be the first half of "\r\n")
        self._skipped: int | None = None  # characters dropped so far of an overlong line being skipped

    def __iter__(self) -> Iterator[str | Overlong]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")  # BOM optional
        head = b""  # the first bytes, until there are enough to recognise gzip/ZIP/UTF-16/binary
        started = False
        for chunk in self._chunks:
            if not started:
                head += chunk
                if len(head) < _MAGIC_BYTES:
                    continue
                _check_magic(head)
                started, chunk = True, head
            yield from self._take(self._carry + decoder.decode(chunk), final=False)
        if not started:
            if not head:
                raise FileRejected("the file is empty (0 bytes)")
            _check_magic(head)
        yield from self._take(self._carry + decoder.decode(head if not started else b"", final=True), final=True)

    def _take(self, text: str, *, final: bool) -> list[str | Overlong]:
        out: list[str | Overlong] = []
        if self._skipped is not None:  # inside an overlong line: drop text up to its end
            hold = ""
            if not final and text.endswith("\r"):
                text, hold = text[:-1], "\r"  # may be the first half of "\r\n"
            end = _LINE_END.search(text)
            if end is None:
                self._skipped += len(text)
                self._carry = hold
                if final:
                    out.append(Overlong(self._skipped))
                    self._skipped, self._carry = None, ""
                return self._emit(out, "")
            out.append(Overlong(self._skipped + end.end()))
            self._skipped = None
            text = text[end.end() :] + hold
        lines, rest = _split_lines(text)
        if final and rest:
            lines.append(rest)
            rest = ""
        if lines and max(map(len, lines)) > self.max_line:
            lines = [line if len(line) <= self.max_line else Overlong(len(line)) for line in lines]  # type: ignore[misc]
        out.extend(lines)
        if len(rest) > self.max_line and not rest.endswith("\r"):
            self._skipped, rest = len(rest), ""
        self._carry = rest
        return self._emit(out, text)

    def _emit(self, lines: list[str | Overlong], text: str) -> list[str | Overlong]:
        if _SURROGATE.search(text) is None:
            self.lines_read += len(lines)
            return lines
        for line in lines:
            self.lines_read += 1
            if isinstance(line, str) and _SURROGATE.search(line):
                self.invalid_lines.add(self.lines_read)
        return lines


_COMPLETE_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)")
_LINE_END = re.compile(r"\r\n|\n|\r")


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
    # Only the part up to the last line end is matched: every match then ends at a terminator ahead, so the
    # scan is linear (findall over an unterminated tail would retry it from every position: quadratic).
    end = max(text.rfind("\r"), text.rfind("\n")) + 1
    return _COMPLETE_LINE.findall(text, 0, end), text[end:]


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
# Physical lines -> records -> fields (RFC 4180 quoting, strict where csv would silently alter data)
# --------------------------------------------------------------------------------------------------

_OPEN_QUOTE = re.compile(r'[ \t]*"')
# The rest of a quoted field: text and "" pairs up to the closing quote (possessive: "" is never split).
_QUOTED_REST = re.compile(r'[^"]*+(?:""[^"]*+)*+"(?!")')
_BLANKS = re.compile(r"[ \t]*")


class _Record:
    """The fields of one record, fed physical line by physical line (state survives quoted line breaks).

    ``feed`` returns True when the record is complete. Memory is bounded by the caller (row size) and by
    ``max_fields``: fields past it are counted, not kept.
    """

    __slots__ = ("_open", "count", "delimiter", "fields", "max_fields", "problem")

    def __init__(self, delimiter: str, max_fields: int) -> None:
        self.delimiter = delimiter
        self.max_fields = max_fields
        self.fields: list[str] = []
        self.count = 0
        self.problem: str | None = None
        self._open: list[str] | None = None  # pieces of a quoted field still open at the end of a line

    @property
    def open(self) -> bool:
        return self._open is not None

    def _add(self, value: str) -> None:
        self.count += 1
        if self.count <= self.max_fields:
            self.fields.append(value)

    def feed(self, line: str) -> bool:
        delimiter = self.delimiter
        end = len(line) - (2 if line.endswith("\r\n") else 1 if line.endswith(("\n", "\r")) else 0)
        pos = 0
        if self._open is not None:  # continue the quoted field opened on an earlier line
            close = _QUOTED_REST.match(line)
            if close is None:
                self._open.append(line)
                return False
            self._open.append(line[: close.end() - 1])
            value, self._open = "".join(self._open).replace('""', '"'), None
            pos = self._after_quote(line, close.end(), end, value)
            if pos >= end:
                return True
            pos += 1
        while True:  # at the start of a field
            opening = _OPEN_QUOTE.match(line, pos, end)
            if opening is None:
                comma = line.find(delimiter, pos, end)
                if comma < 0:
                    self._add(line[pos:end])
                    return True
                self._add(line[pos:comma])
                pos = comma + 1
                continue
            close = _QUOTED_REST.match(line, opening.end())
            if close is None:
                self._open = [line[opening.end() :]]
                return False
            value = line[opening.end() : close.end() - 1].replace('""', '"')
            pos = self._after_quote(line, close.end(), end, value)
            if pos >= end:
                return True
            pos += 1

    def _after_quote(self, line: str, pos: int, end: int, value: str) -> int:
        """After a closing quote only blanks may come before the delimiter; returns the delimiter's position
        (or ``end``)."""
        self._add(value)
        pos = _BLANKS.match(line, pos, end).end()  # type: ignore[union-attr]
        if pos < end and line[pos] != self.delimiter:
            comma = line.find(self.delimiter, pos, end)  # like the csv module: the rest up to the delimiter
            comma = end if comma < 0 else comma
            if self.problem is None:
                self.problem = (
                    f"field {self.count} has text after its closing quote ({_show(line[pos:comma], 20)}): a quoted "
                    'field must end at its closing quote; write a quote inside a field as "" within quotes'
                )
            return comma
        return pos


def split_fields(line: str, delimiter: str, max_fields: int) -> tuple[list[str], str | None]:
    """The fields of a one-line record and its quoting problem (None when fine); for the header."""
    record = _Record(delimiter, max_fields)
    if not record.feed(line):
        return record.fields, "a quoted field is not closed on this line"
    return record.fields, record.problem


# --------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    delimiter: str
    columns: tuple[str, ...]  # normalised names, in file order
    index: dict[str, int]  # known column -> position


def parse_header(line: str | Overlong) -> Header:
    """Detect the delimiter (`,` or `;`) and validate the header line (linear in its length)."""
    size = line.chars if isinstance(line, Overlong) else len(line.rstrip("\r\n"))
    if size > limits.MAX_HEADER_CHARS:
        raise FileRejected(
            f"the header (line 1) is {size:,} characters long; at most {limits.MAX_HEADER_CHARS:,} are accepted "
            "(is line 1 really the header naming the columns?)"
        )
    assert isinstance(line, str)
    if (invalid := _SURROGATE.search(line)) is not None:
        raise FileRejected(
            f"the header (line 1) is not valid UTF-8 (undecodable byte at character {invalid.start() + 1}): "
            "save the file as UTF-8"
        )
    if "\x00" in line:
        raise FileRejected("the header (line 1) contains NUL bytes: the file is binary or UTF-16/32, not UTF-8 CSV")
    stripped = line.strip()
    if not stripped:
        raise FileRejected("the header (line 1) is empty: the first line must name the columns")
    best: tuple[int, str, list[str], str | None] | None = None
    for delimiter in (",", ";"):
        fields, problem = split_fields(stripped, delimiter, limits.MAX_HEADER_CHARS + 1)
        names = [n.strip().lower() for n in fields]
        present = set(names)
        found = sum(1 for c in REQUIRED_COLUMNS if c in present)
        if best is None or found > best[0]:
            best = (found, delimiter, names, problem)
    assert best is not None
    _, delimiter, names, problem = best
    if problem is not None:
        raise FileRejected(f"the header (line 1) cannot be read: {problem}")
    counts = Counter(names)
    duplicates = sorted(n for n, c in counts.items() if n and c > 1)
    if duplicates:
        raise FileRejected(f"the header (line 1) repeats column(s) {', '.join(_cut(d) for d in duplicates[:10])}")
    missing = [c for c in REQUIRED_COLUMNS if c not in counts]
    if missing:
        shown = ", ".join(_cut(n) if n else "<empty>" for n in names[:20]) + (", …" if len(names) > 20 else "")
        raise FileRejected(
            f"the header (line 1) lacks required column(s) {', '.join(missing)} (found: {shown}; delimiter ',' or ';')"
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
    Blank lines are skipped silently. Never raises anything else for any input bytes.
    """
    text = TextLines(chunks)
    lines = iter(text)
    try:
        first = next(lines)
    except StopIteration:
        raise FileRejected("the file is empty (no header line)") from None
    if isinstance(first, str) and not first.strip():
        # Leading blank line(s): the header must be the first line.
        rest_blank = all(isinstance(line, str) and not line.strip() for line in lines)
        if rest_blank:
            raise FileRejected("the file is empty (only blank lines)")
        raise FileRejected("line 1 is blank: the first line must be the header naming the columns")
    header = parse_header(first)
    return _rows(header, text, lines)


def _rows(header: Header, text: TextLines, lines: Iterator[str | Overlong]) -> Iterator[TicketLine | RowRejection]:
    validator = _RowValidator(header)
    delimiter = header.delimiter
    expected = len(header.columns)
    max_row = limits.MAX_ROW_CHARS
    saw_data = False
    numbered: Iterator[tuple[int, str | Overlong]] = enumerate(lines, start=2)
    again: deque[tuple[int, str | Overlong]] = deque()  # lines to read again after an unclosed quote

    def next_line() -> tuple[int, str | Overlong] | None:
        if again:
            return again.popleft()
        return next(numbered, None)

    while (entry := next_line()) is not None:
        start, line = entry
        if isinstance(line, Overlong):
            saw_data = True
            yield RowRejection(start, _too_long(line.chars))
            continue
        if '"' not in line:  # the common case: one physical line, no quoting
            body = line.rstrip("\r\n")
            if not body.strip():
                continue  # blank line
            saw_data = True
            if text.invalid_lines and start in text.invalid_lines:
                yield RowRejection(start, "the row is not valid UTF-8 (undecodable bytes): save the file as UTF-8")
                continue
            got = body.count(delimiter) + 1
            if got != expected:
                yield RowRejection(start, f"expected {expected} fields (delimiter {delimiter!r}), got {got}")
                continue
            yield validator.validate(start, body.split(delimiter))
            continue

        saw_data = True
        record = _Record(delimiter, expected)
        parts = [entry]
        chars = len(line)
        complete = record.feed(line)
        broken: str | None = None  # the record never closes: reject its first line, read the others again
        while not complete:
            following = next_line()
            if following is None:
                broken = "a quoted field opened on this line is never closed (end of file reached): an unbalanced quote"
                break
            if isinstance(following[1], Overlong) or chars + len(following[1]) > max_row:
                size = chars + (following[1].chars if isinstance(following[1], Overlong) else len(following[1]))
                broken = (
                    f"a quoted field opened on this line is not closed within {max_row:,} characters "
                    f"({size:,} so far): an unbalanced quote, or a row longer than the limit"
                )
                again.appendleft(following)
                break
            parts.append(following)
            chars += len(following[1])
            complete = record.feed(following[1])
        if broken is not None:
            again.extendleft(reversed(parts[1:]))
            yield RowRejection(start, broken)
            continue
        end = parts[-1][0]
        if end == start and not line.strip():
            continue
        if text.invalid_lines and any(n in text.invalid_lines for n in range(start, end + 1)):
            yield RowRejection(start, "the row is not valid UTF-8 (undecodable bytes): save the file as UTF-8")
            continue
        span = f" (the record spans lines {start}-{end}: an unbalanced quote?)" if end > start else ""
        if record.problem is not None:
            yield RowRejection(start, record.problem + span)
            continue
        if record.count != expected:
            yield RowRejection(start, f"expected {expected} fields (delimiter {delimiter!r}), got {record.count}{span}")
            continue
        yield validator.validate(start, record.fields)
    if not saw_data:
        raise FileRejected("the file has a header but no data rows")


def _too_long(chars: int) -> str:
    return (
        f"the row is {chars:,} characters long; a row may have at most {limits.MAX_ROW_CHARS:,} "
        "(no longer row fits a purchase item)"
    )


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

        store = self._id(store, "store", problems)
        basket_id = self._id(basket_id, "basket_id", problems)
        ticket_id = self._id(ticket_id, "ticket_id", problems)
        if store and basket_id and not problems:
            problems.extend(limits.id_problems(store, basket_id))
        product = self._text(product, "product", problems, required=True)
        category = self._text(category, "category", problems, required=True)
        product_code = self._text(code, "product_code", problems, required=False) or product
        quantity_value = self._quantity(quantity, problems)
        price = self._price(unit_price, problems)
        moment = self._timestamp(timestamp, problems)
        user = self._optional_id(user_id, "user_id", problems)
        currency_code = self._currency(currency, problems)

        if problems:
            return RowRejection(line, "; ".join(problems))
        return TicketLine(
            line,
            store,
            basket_id,
            ticket_id,
            product_code,
            product,
            category,
            quantity_value,  # type: ignore[arg-type]
            price,
            moment,  # type: ignore[arg-type]
            user,
            currency_code,
        )

    @staticmethod
    def _id(value: str, name: str, problems: list[str]) -> str:
        if not value:
            problems.append(f"{name} is empty")
        elif _CONTROL.search(value):
            problems.append(f"{name} contains a control character (e.g. a line break or tab)")
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
        if len(value) > 12:  # never int() of a huge digit string
            problems.append(f"quantity {_show(value)} is larger than {limits.MAX_QUANTITY} (Glue int)")
            return None
        quantity = int(value)
        if quantity <= 0:
            problems.append(f"quantity {_show(value)} must be greater than 0")
        elif quantity > limits.MAX_QUANTITY:
            problems.append(f"quantity {_show(value)} is larger than {limits.MAX_QUANTITY} (Glue int)")
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
        integer_part, _, decimals = text.lstrip("+").partition(".")
        if len(integer_part.lstrip("0")) > limits.PRICE_MAX_INTEGER_DIGITS:
            problems.append(
                f"unit_price {_show(value)} has more than {limits.PRICE_MAX_INTEGER_DIGITS} integer digits "
                f"(Glue {limits.GLUE_TYPES['productos.precio_unitario']})"
            )
            return None
        if len(decimals.rstrip("0")) > limits.PRICE_MAX_DECIMALS:
            problems.append(
                f"unit_price {_show(value)} has more than {limits.PRICE_MAX_DECIMALS} decimal places "
                f"(Glue {limits.GLUE_TYPES['productos.precio_unitario']})"
            )
            return None
        try:
            price = Decimal(text.lstrip("+"))
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            problems.append(f"unit_price {_show(value)} is not a decimal number")
            return None
        return canonical_decimal(price)

    @staticmethod
    def _timestamp(value: str, problems: list[str]) -> str | None:
        if not value:
            problems.append("timestamp is empty")
            return None
        try:
            return normalise_timestamp(value)
        except ValueError as exc:
            problems.append(f"timestamp {_show(value)} {exc}")
            return None

    @staticmethod
    def _currency(value: str, problems: list[str]) -> str | None:
        if not value:
            return None
        if not _CURRENCY.fullmatch(value):
            problems.append(f"currency {_show(value)} is not a 3-letter ISO 4217 code (e.g. EUR)")
            return None
        return value.upper()


# --------------------------------------------------------------------------------------------------
# Timestamps (grammar in docs/csv-contract.md)
# --------------------------------------------------------------------------------------------------

_PLAIN_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", re.ASCII)
_TIMESTAMP = re.compile(
    r"(?P<y>\d{4})(?P<dash>-?)(?P<mo>\d{2})(?P=dash)(?P<d>\d{2})[T ]"
    r"(?P<h>\d{2})(?:(?P<colon>:?)(?P<mi>\d{2})(?:(?P=colon)(?P<s>\d{2})(?:[.,]\d{1,9})?)?)?"
    r"(?P<tz>Z|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?",
    re.ASCII,
)
_GRAMMAR = (
    "is not a timestamp: expected YYYY-MM-DD HH:MM:SS or ISO 8601 (YYYY-MM-DDTHH[:MM[:SS[.f]]] with an "
    "optional Z or ±HH[:MM] offset; a date and a time are needed)"
)


def normalise_timestamp(value: str) -> str:
    """A timestamp of the accepted grammar -> "YYYY-MM-DD HH:MM:SS" in UTC; raises ValueError (the reason,
    phrased to follow the value) otherwise.

    Without an offset a timestamp is taken as UTC; with one (``Z``, ``±HH``, ``±HHMM``, ``±HH:MM``) it is
    converted to UTC. Minutes and seconds default to 0; fractions of a second are truncated. The result's
    year must be 1000-9999 (four digits, as ``fecha`` and the year partition are written).
    """
    if len(value) == 19 and _PLAIN_TIMESTAMP.fullmatch(value):  # the common case, no offset
        moment = _datetime(int(value[:4]), int(value[5:7]), int(value[8:10]), value[11:13], value[14:16], value[17:19])
        _check_year(moment, value)
        return value if value[10] == " " else f"{value[:10]} {value[11:]}"
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise ValueError(_GRAMMAR)
    moment = _datetime(int(match["y"]), int(match["mo"]), int(match["d"]), match["h"], match["mi"], match["s"])
    if match["sign"]:
        hours, minutes = int(match["oh"]), int(match["om"] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"has an invalid UTC offset {match['tz']!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        try:
            moment = moment - offset if match["sign"] == "+" else moment + offset
        except OverflowError:
            raise ValueError(f"is outside years {limits.MIN_YEAR}-{limits.MAX_YEAR} once converted to UTC") from None
    _check_year(moment, value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _datetime(year: int, month: int, day: int, hour: str, minute: str | None, second: str | None) -> datetime:
    try:
        return datetime(year, month, day, int(hour), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"is not a valid date and time ({exc})") from None


def _check_year(moment: datetime, value: str) -> None:
    if not limits.MIN_YEAR <= moment.year <= limits.MAX_YEAR:
        raise ValueError(f"is outside years {limits.MIN_YEAR}-{limits.MAX_YEAR} once converted to UTC")


def parse_timestamp(value: str) -> str | None:
    """:func:`normalise_timestamp`, None when the value is not accepted."""
    try:
        return normalise_timestamp(value)
    except ValueError:
        return None


def canonical_decimal(value: Decimal) -> Decimal:
    """One representation per number (1.50 -> 1.5, 100.0 -> 100), never in exponent form."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _cut(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _show(value: str, limit: int = 40) -> str:
    """A value quoted for an error message, shortened (reports never carry whole customer rows)."""
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)
