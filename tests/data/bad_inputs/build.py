"""The bad-input corpus: tickets CSV files that are wrong (or unusual) in every way the issue lists.

The small files are committed next to this script as real bytes (BOM, Latin-1, UTF-16, gzip, NUL …);
``python -m tests.data.bad_inputs.build`` rewrites them from the definitions below. The big ones
(a field over the CSV field limit, a basket over DynamoDB's 400 KB item limit) are built at test time
by ``generated()`` instead of committing megabytes. expected.yml holds every file's expected outcome.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

COLUMNS = ("ticket_id", "product", "basket_id", "timestamp", "category", "quantity", "store", "unit_price", "user_id")
HEADER = ",".join(COLUMNS)


def quote(value: str, delimiter: str = ",") -> str:
    if any(c in value for c in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def row(
    ticket: str,
    product: str,
    basket: str,
    timestamp: str = "2024-03-01 10:00:00",
    category: str = "bakery",
    quantity: str = "1",
    store: str = "S1",
    unit_price: str = "1.50",
    user_id: str = "u1",
    delimiter: str = ",",
) -> str:
    fields = (ticket, product, basket, timestamp, category, quantity, store, unit_price, user_id)
    return delimiter.join(quote(f, delimiter) for f in fields)


def lines(*rows: str, header: str = HEADER, newline: str = "\n") -> str:
    return newline.join((header, *rows)) + newline


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


GOOD = lines(
    row("T1", "Pan", "B1"),
    row("T2", "Leche", "B1", category="dairy", quantity="2", unit_price="0.99"),
    row("T3", "Café", "B2", store="S2", unit_price="3.20"),
)


def _zip_of_csv() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        member = zipfile.ZipInfo("tickets.csv", date_time=(2024, 3, 1, 10, 0, 0))  # reproducible bytes
        archive.writestr(member, GOOD * 20, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def small() -> dict[str, bytes]:
    """name -> the exact bytes of each committed corpus file."""
    return {
        # --- whole-file problems -------------------------------------------------------------------
        "empty.csv": b"",
        "whitespace_only.csv": b"\n \n\t\n",
        "header_only.csv": utf8(HEADER + "\n"),
        "missing_column.csv": utf8(
            lines(
                "T1,Pan,B1,2024-03-01 10:00:00,bakery,1,1.50,u1",
                header="ticket_id,product,basket_id,timestamp,category,quantity,unit_price,user_id",
            )
        ),
        "missing_two_columns.csv": utf8(
            lines("T1,Pan,B1,bakery,S1", header="ticket_id,product,basket_id,category,store")
        ),
        "duplicated_column.csv": utf8(
            lines(
                "T1,Pan,B1,2024-03-01 10:00:00,bakery,1,S1,2",
                header="ticket_id,product,basket_id,timestamp,category,quantity,store,quantity",
            )
        ),
        "tab_delimited.csv": utf8(
            HEADER.replace(",", "\t") + "\n" + "T1\tPan\tB1\t2024-03-01 10:00:00\tbakery\t1\tS1\t1.50\tu1\n"
        ),
        "html_page.csv": utf8("<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n"),
        "latin1.csv": lines(row("T1", "Jamón serrano", "B1"), row("T2", "Pan", "B1")).encode("latin-1"),
        "latin1_late.csv": lines(
            row("T1", "Pan", "B1"),
            row("T2", "Leche", "B2"),
            row("T3", "Queso", "B3"),
            row("T4", "Jamón", "B4"),
        ).encode("latin-1"),
        "utf16.csv": GOOD.encode("utf-16"),
        "gzip_as_csv.csv": gzip.compress(utf8(GOOD), mtime=0),
        "zip_as_csv.csv": _zip_of_csv(),
        # --- accepted shapes ---------------------------------------------------------------------------
        "extra_columns.csv": utf8(
            lines(
                "T1,Pan,B1,2024-03-01 10:00:00,bakery,1,S1,1.50,u1,fragile,Y",
                "T2,Leche,B1,2024-03-01 10:00:00,dairy,2,S1,0.99,u1,,N",
                header=HEADER + ",notes,loyalty_card",
            )
        ),
        "reordered_columns.csv": utf8(
            lines(
                "S1,1,bakery,2024-03-01 10:00:00,B1,Pan,T1",
                "S1,2,dairy,2024-03-01 10:05:00,B1,Leche,T2",
                header=" Store ,QUANTITY,Category, Timestamp,BASKET_ID,Product,Ticket_Id",
            )
        ),
        "semicolon.csv": utf8(
            lines(
                row("T1", "Pan, integral", "B1", delimiter=";"),
                row("T2", "Leche", "B1", quantity="3", delimiter=";"),
                header=HEADER.replace(",", ";"),
            )
        ),
        "bom.csv": b"\xef\xbb\xbf" + utf8(GOOD),
        "bom_semicolon_crlf.csv": b"\xef\xbb\xbf"
        + utf8(
            lines(
                row("T1", "Pan", "B1", delimiter=";"),
                row("T2", "Leche", "B1", delimiter=";"),
                header=HEADER.replace(",", ";"),
                newline="\r\n",
            )
        ),
        "crlf.csv": utf8(GOOD.replace("\n", "\r\n")),
        "no_trailing_newline.csv": utf8(GOOD.rstrip("\n")),
        "blank_lines.csv": utf8(
            HEADER + "\n\n" + row("T1", "Pan", "B1") + "\n\n\n" + row("T2", "Leche", "B1") + "\n\n"
        ),
        "quoted_fields.csv": utf8(
            lines(
                row("T1", 'Pan "de pueblo", 500 g', "B1"),
                row("T2", "Tarta\nde queso\n(entera)", "B1", category="cakes, fresh"),
                row("T3", "Leche", "B1", quantity="zero"),
                row("T4", "Agua", "B2"),
            )
        ),
        "unterminated_quote.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                'T2,"Leche entera,B1,2024-03-01 10:00:00,dairy,1,S1,0.99,u1',
                row("T3", "Agua", "B2"),
            )
        ),
        "short_and_long_rows.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                "T2,Leche,B1,2024-03-01 10:00:00,dairy",
                row("T3", "Agua", "B1") + ",surplus,fields",
                row("T4", "Queso", "B1"),
            )
        ),
        "nul_byte.csv": utf8(lines(row("T1", "Pan\x00blanco", "B1"), row("T2", "Leche", "B1"))),
        "nul_byte_late.csv": utf8(
            lines(
                *(row(f"T{i:02d}", f"Producto {i:02d}", "B1", category="groceries") for i in range(30)),
                row("T99", "Pan\x00blanco", "B2"),
            )
        ),
        # --- row-level problems ----------------------------------------------------------------------
        "quantity_values.csv": utf8(
            lines(
                row("T1", "Pan", "B1", quantity="-1"),
                row("T2", "Pan", "B1", quantity="0"),
                row("T3", "Pan", "B1", quantity="1.5"),
                row("T4", "Pan", "B1", quantity="dos"),
                row("T5", "Pan", "B1", quantity=""),
                row("T6", "Pan", "B1", quantity="1e3"),
                row("T7", "Pan", "B1", quantity="3"),
            )
        ),
        "unit_price_values.csv": utf8(
            lines(
                row("T1", "Pan", "B1", unit_price="-0.01"),
                row("T2", "Pan", "B1", unit_price="abc"),
                row("T3", "Pan", "B1", unit_price="NaN"),
                row("T4", "Pan", "B1", unit_price="Infinity"),
                row("T5", "Pan", "B1", unit_price="1,50"),
                row("T6", "Pan", "B1", unit_price="0"),
                row("T7", "Pan", "B1", unit_price="12.3456"),
                row("T8", "Pan", "B1", unit_price=""),
            )
        ),
        "timestamps_bad.csv": utf8(
            lines(
                row("T1", "Pan", "B1", timestamp="2024-13-01 10:00:00"),
                row("T2", "Pan", "B1", timestamp="31/12/2024 10:00"),
                row("T3", "Pan", "B1", timestamp="yesterday"),
                row("T4", "Pan", "B1", timestamp=""),
                row("T5", "Pan", "B1", timestamp="2024-02-30 10:00:00"),
                row("T6", "Pan", "B1", timestamp="1700000000"),
                row("T7", "Pan", "B1", timestamp="2024-03-01 25:00:00"),
                row("T8", "Pan", "B1", timestamp="2024-03-01 10:00:00"),
            )
        ),
        "timestamps_mixed.csv": utf8(
            lines(
                row("T1", "Pan", "B1", timestamp="2024-03-01 10:00:00"),
                row("T2", "Pan", "B2", timestamp="2024-03-01T10:00:00"),
                row("T3", "Pan", "B3", timestamp="2024-03-01T10:00:00Z"),
                row("T4", "Pan", "B4", timestamp="2024-03-01T12:00:00+02:00"),
                row("T5", "Pan", "B5", timestamp="2024-03-01T05:00:00-05:00"),
                row("T6", "Pan", "B6", timestamp="2024-03-01T23:30:00-02:00"),
                row("T7", "Pan", "B7", timestamp="2024-03-01T10:00:00.250Z"),
            )
        ),
        "timestamps_offsets.csv": utf8(
            lines(
                row("T1", "Pan", "B1", timestamp="2024-03-01T10+01:00"),
                row("T2", "Pan", "B2", timestamp="2024-03-01T10:00+01"),
                row("T3", "Pan", "B3", timestamp="2024-03-01T10:00:00+0130"),
                row("T4", "Pan", "B4", timestamp="0999-06-01 10:00:00"),
                row("T5", "Pan", "B4", timestamp="999-06-01 10:00:00"),
                row("T6", "Pan", "B4", timestamp="0001-01-01T00:30:00+01:00"),
                row("T7", "Pan", "B4", timestamp="9999-12-31T23:59:59-01:00"),
                row("T8", "Pan", "B5", timestamp="1000-01-01T00:00:00Z"),
                row("T9", "Pan", "B6", timestamp="9999-12-31T23:59:59Z"),
            )
        ),
        "quoting_errors.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                'T2,"Pan"extra,B1,2024-03-01 10:00:00,bakery,1,S1,1.50,u1',
                'T3,Leche,B1,2024-03-01 10:00:00,dairy,1,"S1"x,1.50,u1',
                'T4,5" TV,B2,2024-03-01 10:00:00,tv,1,S1,1.50,u1',
                row("T5", "Agua", "B3"),
            )
            + 'T6,"Queso,B3,2024-03-01 10:00:00,dairy,1,S1,1.50,u1\n'
            + row("T7", "Huevos", "B3")
            + "\n"
        ),
        "long_ids.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                row("T2", "Pan", "B1", store="S" * 1025),
                row("T3", "Pan", "B" * 850, store="S" * 30),
                row("T4", "Pan", "ñ" * 100, store="tienda ñ"),
                row("T5", "Pan", "B" * 800, store="S" * 80),
            )
        ),
        "numbers_overflow.csv": utf8(
            lines(
                row("T1", "Pan", "B1", quantity="2147483647", unit_price=""),
                row("T2", "Pan", "B2", quantity="2147483648"),
                row("T3", "Pan", "B3", quantity="2147483647", unit_price=""),
                row("T4", "Leche", "B3", quantity="1", unit_price=""),
                row("T5", "Pan", "B4", quantity="1000", unit_price="99999999999999.9999"),
                row("T6", "Pan", "B5", quantity="1", unit_price="99999999999999.9999"),
                row("T7", "Pan", "B6", quantity="99999999999999999999999"),
                row("T8", "Pan", "B7", unit_price="123456789012345"),
            )
        ),
        "empty_ids.csv": utf8(
            lines(
                row("", "Pan", "B1"),
                row("T2", "Pan", ""),
                row("T3", "Pan", "B1", store=""),
                row("T4", "Pan", "B1", store="   "),
                row("T5", "Pan", "B1"),
            )
        ),
        "ids_path_chars.csv": utf8(
            lines(
                row("T1", "Pan", "../../etc/passwd", store="north/east"),
                row("T2", "Pan", "a b", store=".."),
                row("T3", "Pan", "B1", store="tienda/../../x"),
                row("T4", "Pan", "%2F..%2F", store="S 1"),
                row("T5", "Pan", "compras/S1/2024/03/01/x.json", store="."),
            )
        ),
        "ids_unicode.csv": utf8(
            lines(
                row("T1", "Pan", "cesta ☃", store="Tienda Ñandú"),
                row("T2", "Pan", "🛒-1", store="店舗"),
                row("T3", "Pan", "B1", store="متجر"),
                row("T4", "Pan", "B1", store="Cafe\u0301"),
                row("T5", "Pan", "B1", store="Café"),
            )
        ),
        "ids_control_chars.csv": utf8(
            lines(
                row("T1", "Pan", "B\t1", store="S\x01"),
                row("T2", "Pan", "B\x7f", store="S1"),
                row("T3", "Pan", "B\u200b", store="S1"),
                row("T4", "Pan", "B\n2", store="S1"),
            )
        ),
        "formula_cells.csv": utf8(
            lines(
                row("T1", "=cmd|' /C calc'!A0", "-2+3", category="+SUM(A1:A9)", store="@SUM(1+1)"),
                row("T2", '=HYPERLINK("http://evil.example/x","click")', "-2+3", store="@SUM(1+1)"),
                row("T3", "'; DROP TABLE compras; --", "B1", user_id="=1+1"),
            )
        ),
        "duplicate_lines.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                row("T1", "Pan", "B1"),
                row("T2", "Leche", "B1"),
            )
        ),
        "conflicting_duplicates.csv": utf8(
            lines(
                row("T1", "Pan", "B1", quantity="1"),
                row("T2", "Leche", "B1"),
                row("T1", "Pan", "B1", quantity="5"),
                row("T3", "Agua", "B2"),
            )
        ),
        "basket_split.csv": utf8(
            lines(
                row("T1", "Pan", "B1", timestamp="2024-03-01 10:05:00"),
                row("T2", "Agua", "B2"),
                row("T3", "Leche", "B1", timestamp="2024-03-01 10:01:00"),
                row("T4", "Queso", "B2", store="S2"),
                row("T5", "Huevos", "B1", timestamp="2024-03-01 10:03:00"),
            )
        ),
        "mixed_good_bad.csv": utf8(
            lines(
                row("T1", "Pan", "B1"),
                row("T2", "Leche", "B1", quantity="-3"),
                row("T3", "Queso", "B2", store="S2", unit_price="4.75"),
                row("T4", "Agua", "B2", store="S2", timestamp="not a date"),
                row("T5", "Huevos", "B3", store="S2", quantity="12", unit_price="0.25"),
                row("T6", "Arroz", "", store="S2"),
                row("T7", "Aceite", "B3", store="S2", unit_price="7.10"),
            )
        ),
    }


def huge_field_csv() -> bytes:
    """One product name of 512 KiB: its row is over the row limit (no such row fits a 400 KB item)."""
    return utf8(lines(row("T1", "Pan", "B1"), row("T2", "X" * 524_288, "B1"), row("T3", "Agua", "B2")))


def huge_basket_csv() -> bytes:
    """One basket of 2,000 lines with long names: well over DynamoDB's 400 KB item limit; a small one beside it."""
    big = (
        row(f"T{i:05d}", f"Producto {i:05d} " + "descripción larga " * 12, "BIG", category="bulk") for i in range(2_000)
    )
    return utf8(lines(row("S-1", "Pan", "SMALL"), *big, row("S-2", "Leche", "SMALL")))


def huge_header_csv() -> bytes:
    """A 96 KB header (thousands of columns): over the header limit, rejected at once (was ~20 s of CPU)."""
    return utf8(lines(row("T1", "Pan", "B1"), header=HEADER + "," + ",".join(f"extra_{i}" for i in range(12_000))))


def huge_line_csv() -> bytes:
    """One 21 MB line of millions of tiny fields between good rows (the csv module peaked at ~636 MB)."""
    return utf8(lines(row("T1", "Pan", "B1"), "x," * 10_500_000, row("T2", "Leche", "B1")))


def generated() -> dict[str, bytes]:
    """The big corpus files, built at test time."""
    return {
        "huge_field.csv": huge_field_csv(),
        "huge_basket.csv": huge_basket_csv(),
        "huge_header.csv": huge_header_csv(),
        "huge_line.csv": huge_line_csv(),
    }


def corpus() -> dict[str, bytes]:
    """Every corpus file: committed ones read from disk, big ones generated."""
    files = {path.name: path.read_bytes() for path in sorted(HERE.glob("*.csv"))}
    files.update(generated())
    return files


def main() -> None:
    for name, data in small().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(small())} files to {HERE}")


if __name__ == "__main__":
    main()
