"""lambdas/domain/tickets.py: decoding, header detection, row validation, physical line numbers."""

from __future__ import annotations

import codecs
import gzip
from decimal import Decimal

import pytest

from lambdas.domain.tickets import (
    FileRejected,
    RowRejection,
    TextLines,
    TicketLine,
    parse_header,
    parse_tickets,
    parse_timestamp,
)

HEADER = "ticket_id,product,basket_id,timestamp,category,quantity,store,unit_price,user_id,product_code,currency\n"


def rows_of(text: str | bytes, chunk: int = 1 << 20) -> list[TicketLine | RowRejection]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(parse_tickets(data[i : i + chunk] for i in range(0, len(data), chunk)))


def rejected(text: str) -> dict[int, str]:
    return {r.line: r.reason for r in rows_of(text) if isinstance(r, RowRejection)}


def test_valid_row_is_normalised():
    [line] = rows_of(HEADER + " T1 , Leche entera, B1 ,2024-03-01T12:00:00+02:00,Lácteos, 3 , S1 ,1.50,u1,P-1,eur\n")
    assert line == TicketLine(
        line=2,
        store="S1",
        basket_id="B1",
        ticket_id="T1",
        product_code="P-1",
        product="Leche entera",
        category="Lácteos",
        quantity=3,
        unit_price=Decimal("1.5"),
        timestamp="2024-03-01 10:00:00",
        user_id="u1",
        currency="EUR",
    )


def test_optional_columns_may_be_absent_and_codigo_falls_back_to_product():
    text = "TICKET_ID ;Product; basket_id;timestamp;category;quantity;store\n"
    [line] = rows_of(text + "T1;Pan;B1;2024-03-01 10:00:00;Panadería;1;S1\n")
    assert (line.product_code, line.product, line.unit_price) == ("Pan", "Pan", None)
    assert (line.user_id, line.currency) == (None, None)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_result_does_not_depend_on_chunk_boundaries(chunk):
    text = codecs.BOM_UTF8 + (
        HEADER
        + 'T1,"Pan\r\nlargo, ""rústico""",B1,2024-03-01 10:00:00,Pan,1,S1,,,,\r\n'
        + "T2,Café ñ 🛒,B1,2024-03-01 10:00:00,Bebidas,2,S1,0.5,,,\r\n"
        + "T3,x,B2,bad,c,1,S1,,,,\n"
    ).encode("utf-8")
    assert rows_of(text, chunk) == rows_of(text)
    lines = rows_of(text)
    assert [r.line for r in lines] == [2, 4, 5]
    assert lines[0].product == 'Pan\r\nlargo, "rústico"'
    assert isinstance(lines[2], RowRejection)


def test_line_numbers_are_physical_lines_where_the_record_starts():
    text = HEADER + 'T1,"a\nb\nc",B1,2024-03-01 10:00:00,c,1,S1,,,,\n\nT2,x,B1,2024-03-01 10:00:00,c,zero,S1,,,,\n'
    assert rejected(text) == {6: "quantity 'zero' is not a whole number"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (codecs.BOM_UTF8, "empty"),
        (b"\n \n\t\n", "empty"),
        (gzip.compress(HEADER.encode(), mtime=0), "gzip"),
        (b"PK\x03\x04rest-of-a-zip", "ZIP"),
        ("\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"), "UTF-16"),
        (HEADER.encode("utf-16-be"), "NUL"),
        (b"ticket_id,product\nT1,x\n", "lacks required column(s) basket_id, timestamp, category, quantity, store"),
        (HEADER.replace("store", "quantity").encode(), "repeats column(s) quantity"),
        (HEADER.encode(), "no data rows"),
        (HEADER.encode() + b"\n\n", "no data rows"),
        ("ticket_id,producto_ñ".encode("latin-1") + b",basket_id\n", "not valid UTF-8"),
        (b"\n" + HEADER.encode() + b"T1,x,B1,2024-03-01 10:00:00,c,1,S1,,,,\n", "line 1 is blank"),
    ],
)
def test_file_rejections(data, reason):
    with pytest.raises(FileRejected) as error:
        rows_of(data)
    assert reason in error.value.reason


def test_delimiter_detected_from_header_and_decimal_comma_in_semicolon_files():
    text = HEADER.replace(",", ";") + 'T1;"a, b";B1;2024-03-01 10:00:00;c;1;S1;1,25;;;\n'
    [line] = rows_of(text)
    assert (line.product, line.unit_price) == ("a, b", Decimal("1.25"))
    comma = HEADER + 'T1,x,B1,2024-03-01 10:00:00,c,1,S1,"1,25",,,\n'
    assert "unit_price '1,25' is not a decimal number" in rejected(comma)[2]


def test_invalid_utf8_rejects_only_its_row():
    text = HEADER + "T1,Jam\xf3n,B1,2024-03-01 10:00:00,c,1,S1,,,,\nT2,Pan,B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
    data = text.encode("latin-1")
    rows = rows_of(data, chunk=7)
    assert isinstance(rows[0], RowRejection) and "not valid UTF-8" in rows[0].reason
    assert isinstance(rows[1], TicketLine) and rows[1].product == "Pan"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("T1,x,B1,2024-03-01 10:00:00,c,0,S1,,,,", "quantity '0' must be greater than 0"),
        ("T1,x,B1,2024-03-01 10:00:00,c,-2,S1,,,,", "quantity '-2' is not a whole number"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1.0,S1,,,,", "quantity '1.0' is not a whole number"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1e3,S1,,,,", "quantity '1e3' is not a whole number"),
        ("T1,x,B1,2024-03-01 10:00:00,c,99999999999,S1,,,,", "larger than 2147483647"),
        ("T1,x,B1,2024-03-01 10:00:00,c,,S1,,,,", "quantity is empty"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,-0.5,,,", "unit_price '-0.5' must not be negative"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,NaN,,,", "unit_price 'NaN' is not a decimal number"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,Infinity,,,", "is not a decimal number"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,1.23456,,,", "more than 4 decimal places"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,123456789012345,,,", "more than 14 integer digits"),
        ("T1,x,B1,2024-03-01,c,1,S1,,,,", "timestamp '2024-03-01' is not a timestamp: expected YYYY-MM-DD HH:MM:SS"),
        ("T1,x,B1,2024-13-01 10:00:00,c,1,S1,,,,", "is not a valid date and time (month must be in 1..12)"),
        ("T1,x,B1,01/03/2024 10:00,c,1,S1,,,,", "is not a timestamp"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,,,,EURO", "currency 'EURO' is not a 3-letter ISO 4217 code"),
        (",x,B1,2024-03-01 10:00:00,c,1,S1,,,,", "ticket_id is empty"),
        ("T1,x,  ,2024-03-01 10:00:00,c,1,S1,,,,", "basket_id is empty"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,,,,,", "store is empty"),
        ("T1,,B1,2024-03-01 10:00:00,c,1,S1,,,,", "product is empty"),
        ("T1,x,B1,2024-03-01 10:00:00,,1,S1,,,,", "category is empty"),
        ('T1,x,"B\t1",2024-03-01 10:00:00,c,1,S1,,,,', "basket_id contains a control character"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S\x011,,,,", "store contains a control character"),
        ('T1,x,"B\n1",2024-03-01 10:00:00,c,1,S1,,,,', "basket_id contains a control character"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1", "expected 11 fields (delimiter ','), got 7"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1,S1,,,,,extra", "expected 11 fields"),
        ("T1,x,B1,2024-03-01 10:00:00,c,1," + "S" * 1025 + ",,,,", "store is 1,025 bytes long: a Glue partition value"),
        ("T1,x," + "B" * 800 + ",2024-03-01 10:00:00,c,1," + "S" * 80 + ",,,,", "together they may take at most 879"),
    ],
)
def test_row_rules(fields, expected):
    reasons = rejected(HEADER + fields + "\n")
    assert list(reasons) == [2]
    assert expected in reasons[2]


def test_nul_byte_far_into_the_file_rejects_its_row_near_the_start_the_file():
    good = "".join(f"T{i},x,B1,2024-03-01 10:00:00,c,1,S1,,,,\n" for i in range(40))
    late = HEADER + good + "TX,x\x00y,B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
    assert "product contains a control character" in rejected(late)[42]
    with pytest.raises(FileRejected, match="NUL"):
        rows_of(HEADER + "TX,x\x00y,B1,2024-03-01 10:00:00,c,1,S1,,,,\n" + good)


def test_every_problem_of_a_row_is_named_and_values_are_shortened():
    reasons = rejected(HEADER + "T1,x,B1,yesterday,c,0,S1," + "9" * 100 + ",,,\n")
    assert "quantity '0'" in reasons[2] and "timestamp 'yesterday'" in reasons[2] and "unit_price" in reasons[2]
    assert "9" * 50 not in reasons[2]


def test_unbalanced_quote_swallows_the_rest_and_says_so():
    text = HEADER + "T1,x,B1,2024-03-01 10:00:00,c,1,S1,,,,\n" + 'T2,"x,B1,2024-03-01 10:00:00,c,1,S1,,,,\nT3,y\n'
    assert "unbalanced quote" in rejected(text)[3]


def test_huge_field_rejects_its_row_and_parsing_goes_on():
    text = HEADER + "T1," + "x" * 500_000 + ",B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
    text += "T2,y,B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
    rows = rows_of(text)
    assert isinstance(rows[0], RowRejection) and "a row may have at most 409,600" in rows[0].reason
    assert isinstance(rows[-1], TicketLine) and rows[-1].ticket_id == "T2"


def test_ids_are_kept_verbatim():
    text = HEADER + "T1,x,../../etc/passwd,2024-03-01 10:00:00,c,1,tienda/norte ñ,,,,\n"
    [line] = rows_of(text)
    assert line.key == ("tienda/norte ñ", "../../etc/passwd")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01 10:00:00", "2024-03-01 10:00:00"),
        ("2024-03-01T10:00:00", "2024-03-01 10:00:00"),
        ("2024-03-01T10:00:00Z", "2024-03-01 10:00:00"),
        ("2024-03-01T10:00:00.987654+00:00", "2024-03-01 10:00:00"),
        ("2024-03-01T23:30:00-02:00", "2024-03-02 01:30:00"),
        ("2024-03-01T01:00:00+05:30", "2024-02-29 19:30:00"),
        ("2024-03-01", None),
        ("2024-02-30 10:00:00", None),
        ("2024-03-01 25:00:00", None),
        ("1709287200", None),
        ("", None),
    ],
)
def test_parse_timestamp(value, expected):
    assert parse_timestamp(value) == expected


def test_text_lines_keep_terminators_and_count_lines():
    text = TextLines([b"a\r", b"\nb\rc\n", b"d"])
    assert list(text) == ["a\r\n", "b\r", "c\n", "d"]
    assert text.lines_read == 4


def test_header_names_are_trimmed_and_case_insensitive():
    header = parse_header(" Ticket_ID;PRODUCT ; basket_id;timestamp;category;quantity;Store;Extra\r\n")
    assert header.delimiter == ";"
    assert header.index["store"] == 6 and "extra" not in header.index


# -- issue 15: timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10+01:00", "2024-03-01 09:00:00"),
        ("2024-03-01T10:00+01", "2024-03-01 09:00:00"),
        ("2024-03-01T10:00:00+0130", "2024-03-01 08:30:00"),
        ("2024-03-01 10:00:00-00:30", "2024-03-01 10:30:00"),
        ("2024-03-01T10", "2024-03-01 10:00:00"),
        ("2024-03-01T10:05", "2024-03-01 10:05:00"),
        ("20240301T100000Z", "2024-03-01 10:00:00"),
        ("2024-03-01T10:00:00,5Z", "2024-03-01 10:00:00"),
        ("1000-01-01T00:00:00", "1000-01-01 00:00:00"),
        ("9999-12-31 23:59:59", "9999-12-31 23:59:59"),
        ("1000-01-01T00:30:00-01:00", "1000-01-01 01:30:00"),
        # outside the 4-digit years after conversion, or not the grammar
        ("0999-06-01 10:00:00", None),
        ("999-06-01 10:00:00", None),
        ("0001-01-01T00:30:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
        ("1000-01-01T00:30:00+01:00", None),
        ("0000-01-01 00:00:00", None),
        ("2024-03-01T10:00:00+24:00", None),
        ("2024-03-01T10:00:00+01:60", None),
        ("2024-03-01T10:00:00+01:00:30", None),
        ("2024-03-01T10:00:00 UTC", None),
        ("2024-03-01T10:00:00.", None),
        ("2024-03-0110:00:00", None),
        ("2024-W09-5T10:00:00", None),
        ("２０２４-03-01 10:00:00", None),  # non-ASCII digits
        ("2024-03-01 24:00:00", None),
        ("2024-03-01 10:00:60", None),
    ],
)
def test_timestamp_grammar_normalises_every_accepted_form_to_four_digit_utc(value, expected):
    assert parse_timestamp(value) == expected


def test_out_of_range_timestamps_are_row_rejections_never_exceptions():
    text = HEADER + "".join(
        f"T{i},x,B1,{ts},c,1,S1,,,,\n"
        for i, ts in enumerate(["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "0999-06-01 10:00:00"])
    )
    reasons = rejected(text)
    assert list(reasons) == [2, 3, 4]
    assert all("outside years 1000-9999 once converted to UTC" in r for r in reasons.values())


# -- issue 15: quoting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ('T1,"Pan"extra,B1,2024-03-01 10:00:00,c,1,S1,,,,', "field 2 has text after its closing quote ('extra')"),
        ('T1,"Pan" "x",B1,2024-03-01 10:00:00,c,1,S1,,,,', "field 2 has text after its closing quote"),
        ('T1,x,B1,2024-03-01 10:00:00,c,1,"S1"2,,,,', "field 7 has text after its closing quote ('2')"),
    ],
)
def test_text_after_a_closing_quote_rejects_the_row(record, reason):
    text = HEADER + record + "\nT2,y,B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
    rows = rows_of(text)
    assert isinstance(rows[0], RowRejection) and reason in rows[0].reason
    assert isinstance(rows[1], TicketLine) and rows[1].ticket_id == "T2"


def test_quote_rules_that_keep_values_exact():
    text = HEADER + (
        'T1, "a, b" ,B1,2024-03-01 10:00:00,c,1,S1,,,,\n'  # blanks around a quoted field
        'T2,5" TV,B1,2024-03-01 10:00:00,c,1,S1,,,,\n'  # a quote inside an unquoted field is a character
        'T3,"say ""hi""",B1,2024-03-01 10:00:00,c,1,S1,,,,\n'
        'T4,"",B1,2024-03-01 10:00:00,"c",1,S1,,,,\n'
    )
    rows = rows_of(text)
    assert [r.product if isinstance(r, TicketLine) else r.reason for r in rows] == [
        "a, b",
        '5" TV',
        'say "hi"',
        "product is empty",
    ]


def test_a_quote_left_open_at_end_of_file_rejects_only_its_line_and_the_rest_is_read_again():
    text = HEADER + (
        "T1,x,B1,2024-03-01 10:00:00,c,1,S1,,,,\n"
        'T2,"open,B1,2024-03-01 10:00:00,c,1,S1,,,,\n'
        "T3,y,B2,2024-03-01 10:00:00,c,1,S1,,,,\n"
        "T4,z,B2,2024-03-01 10:00:00,c,1,S1,,,,"
    )
    rows = rows_of(text, chunk=5)
    assert [(r.line, type(r).__name__) for r in rows] == [
        (2, "TicketLine"),
        (3, "RowRejection"),
        (4, "TicketLine"),
        (5, "TicketLine"),
    ]
    assert "never closed (end of file reached)" in rows[1].reason


def test_a_quote_open_past_the_row_limit_rejects_its_line_and_reads_the_following_lines_again():
    good = "".join(f"T{i},x,B1,2024-03-01 10:00:00,c,1,S1,,,,\n" for i in range(12_000))  # > 409,600 chars
    text = HEADER + 'T0,"open,B0,2024-03-01 10:00:00,c,1,S1,,,,\n' + good
    text += 'TZ,"a\nb",B9,2024-03-01 10:00:00,c,1,S1,,,,\n'
    rows = rows_of(text)
    assert isinstance(rows[0], RowRejection) and "not closed within 409,600 characters" in rows[0].reason
    assert all(isinstance(r, TicketLine) for r in rows[1:]) and len(rows) == 12_002
    assert rows[-1].product == "a\nb"


# -- issue 15: bounds on the header and the rows -------------------------------------------------------------


def test_header_over_the_limit_rejects_the_file_with_a_reason():
    header = HEADER.rstrip("\n") + "," + ",".join(f"c{i}" for i in range(20_000)) + "\n"
    with pytest.raises(FileRejected, match=r"the header \(line 1\) is [0-9,]+ characters long; at most 65,536"):
        rows_of(header + "T1,x\n")


def test_header_checks_are_linear_in_the_number_of_columns():
    # 10,000 columns within the size limit: a count per column (quadratic) would take minutes here
    extra = ",".join(f"c{i}" for i in range(10_000))
    header = parse_header(HEADER.rstrip("\n") + "," + extra + "\n")
    assert len(header.columns) == 10_011
    with pytest.raises(FileRejected, match="repeats column"):
        parse_header(HEADER.rstrip("\n") + "," + extra + ",c5\n")


def test_a_header_with_a_broken_quote_rejects_the_file():
    with pytest.raises(FileRejected, match="cannot be read"):
        rows_of('ticket_id,"product"x,basket_id,timestamp,category,quantity,store\nT1\n')


def test_a_line_longer_than_a_row_is_never_held_whole_and_rejects_only_itself():
    import tracemalloc

    line = "a;" * 3_000_000  # 6 MB of tiny fields, the shape that made the csv module peak at ~30x the line
    data = (HEADER + line + "\nT2,y,B1,2024-03-01 10:00:00,c,1,S1,,,,\n").encode()
    chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    del data
    tracemalloc.start()
    try:
        rows = list(parse_tickets(iter(chunks)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(r).__name__ for r in rows] == ["RowRejection", "TicketLine"]
    assert "the row is 6,000,001 characters long; a row may have at most 409,600" in rows[0].reason
    assert peak < 16 * (1 << 20), peak  # chunks of 1 MiB + one row at most, whatever the line's length


def test_a_row_with_too_many_fields_is_rejected_without_keeping_them():
    record = 'T1,"x",B1,2024-03-01 10:00:00,c,1,S1,,,,' + ',""' * 50_000
    reasons = rejected(HEADER + record + "\n")
    assert reasons == {2: "expected 11 fields (delimiter ','), got 50011"}


def test_overlong_lines_across_chunk_boundaries_and_line_endings():
    for ending in ("\n", "\r\n", "\r"):
        data = (HEADER + "T1," + "x" * 500_000 + ending + "T2,y,B1,2024-03-01 10:00:00,c,1,S1,,,," + ending).encode()
        for chunk in (4096, 1 << 20, 409_601):
            rows = rows_of(data, chunk)
            assert [(r.line, type(r).__name__) for r in rows] == [(2, "RowRejection"), (3, "TicketLine")], (
                ending,
                chunk,
            )
