"""Property (issue 15, point 4): whatever ingestion accepts, the stream export writes, under a key within S3's
limits, as a document whose every value fits the Glue table's declared types (config/pipeline.yml catalog).

Rows are generated near every limit (long and non-ASCII ids, offsets that cross days and years, quantities and
prices near the Glue int/decimal(18,4) bounds); each accepted purchase goes through the real path minus AWS:
parse_tickets -> build_purchase -> DynamoDB JSON (boto3's TypeSerializer, as the table stores it) -> the stream
layer's conversion -> build_export, with the longest prefix, event name and sequence number the limits allow.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline_config as config
from lambdas.domain import documents, keys, limits
from lambdas.domain.purchases import SourceInfo, build_purchase
from lambdas.domain.tickets import RowRejection, parse_tickets
from lambdas.stream.changes import change_from_record

PREFIX = "p" * (limits.MAX_PREFIX_BYTES - 1) + "/"
SEQUENCE = "9" * limits.MAX_SEQUENCE_NUMBER_DIGITS
CONTEXT = documents.ExportContext(stage="t", default_currency="EUR", processed_by="f", compras_prefix=PREFIX)
SOURCE = SourceInfo(bucket="b", key="uploads/x.csv", etag="e", ingested_at="2026-01-01T00:00:00Z")
_serializer = TypeSerializer()


# -- Glue type checking -------------------------------------------------------------------------------------


def parse_type(text: str):
    """'array<struct<a:int,b:decimal(18,4)>>' -> ('array', ('struct', {'a': ('int',), 'b': ('decimal', 18, 4)}))."""
    text = text.replace(" ", "")
    if text.startswith("array<"):
        return ("array", parse_type(text[6:-1]))
    if text.startswith("struct<"):
        fields, depth, current = {}, 0, ""
        for char in text[7:-1] + ",":
            depth += char in "<("
            depth -= char in ">)"
            if char == "," and depth == 0:
                name, _, kind = current.partition(":")
                fields[name] = parse_type(kind)
                current = ""
            else:
                current += char
        return ("struct", fields)
    if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", text):
        return ("decimal", int(match[1]), int(match[2]))
    return (text,)


def fits(kind, value, where: str) -> None:
    if value is None:
        return
    name = kind[0]
    if name == "string":
        assert isinstance(value, str), where
    elif name == "int":
        assert isinstance(value, int) and -(2**31) <= value <= 2**31 - 1, (where, value)
    elif name == "bigint":
        assert isinstance(value, int) and -(2**63) <= value <= 2**63 - 1, (where, value)
    elif name == "decimal":
        precision, scale = kind[1], kind[2]
        number = Decimal(value)
        assert number == number.quantize(Decimal(1).scaleb(-scale)), (where, value)
        assert abs(number) < Decimal(10) ** (precision - scale), (where, value)
    elif name == "array":
        assert isinstance(value, list), where
        for index, element in enumerate(value):
            fits(kind[1], element, f"{where}[{index}]")
    elif name == "struct":
        assert isinstance(value, dict) and set(value) <= set(kind[1]), (where, value)
        for field, sub in kind[1].items():
            fits(sub, value.get(field), f"{where}.{field}")
    else:  # pragma: no cover - a type the catalog does not use
        raise AssertionError(f"unknown Glue type {kind}")


CATALOG = config.catalog()
COLUMNS = {c["Name"]: parse_type(c["Type"]) for c in CATALOG["columns"]}


# -- generated CSV rows -------------------------------------------------------------------------------------

ID_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
IDS = st.one_of(
    st.text(ID_CHARS, min_size=1, max_size=8),
    st.text(st.sampled_from("Bñ€🛒/ .~"), min_size=1, max_size=400),
    st.integers(1, 1100).map(lambda n: "S" * n),
)
YEARS = st.sampled_from([1000, 1001, 2024, 9998, 9999, 999])
OFFSETS = st.sampled_from(["", "Z", "+01:00", "-01:00", "+14:00", "-12", "+0530", "+23:59", "-23:59"])


@st.composite
def timestamps(draw) -> str:
    year = draw(YEARS)
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 31))
    hour, minute, second = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    sep = draw(st.sampled_from(["T", " "]))
    form = draw(st.sampled_from(["full", "minutes", "hour", "fraction"]))
    time = {
        "full": f"{hour:02d}:{minute:02d}:{second:02d}",
        "minutes": f"{hour:02d}:{minute:02d}",
        "hour": f"{hour:02d}",
        "fraction": f"{hour:02d}:{minute:02d}:{second:02d}.123456",
    }[form]
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{time}{draw(OFFSETS)}"


QUANTITIES = st.one_of(st.integers(1, 1000), st.integers(2**31 - 3, 2**31 + 1)).map(str)
PRICES = st.one_of(
    st.just(""),
    st.decimals(0, Decimal("99999999999999.9999"), places=4).map(str),
    st.sampled_from(["99999999999999.9999", "0.0001", "12345678901234.5", "100000000000000"]),
)


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@st.composite
def boundary_ids(draw) -> tuple[str, str]:
    """A (store, basket) pair whose encoded length is near what the export key can hold."""
    store = "ñ" * draw(st.integers(0, 20)) + "S" * draw(st.integers(1, 200))
    room = limits.S3_MAX_KEY_BYTES - 140 - limits.encoded_length(store)  # about what the fixed parts leave
    return store, "B" * max(1, room + draw(st.integers(-20, 20)))


@st.composite
def files(draw) -> str:
    baskets = draw(st.lists(st.one_of(st.tuples(IDS, IDS), boundary_ids()), min_size=1, max_size=4))
    rows = []
    for index in range(draw(st.integers(1, 12))):
        store, basket = draw(st.sampled_from(baskets))
        fields = [
            f"T{index}",
            draw(st.text(ID_CHARS, min_size=1, max_size=20)),
            basket,
            draw(timestamps()),
            "cat",
            draw(QUANTITIES),
            store,
            draw(PRICES),
        ]
        rows.append(",".join(quote(f) for f in fields))
    return "ticket_id,product,basket_id,timestamp,category,quantity,store,unit_price\n" + "\n".join(rows) + "\n"


def stream_record(item: dict) -> DynamoDBRecord:
    image = {k: _serializer.serialize(v) for k, v in item.items()}
    return DynamoDBRecord(
        {
            "eventID": "e",
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1795460867,
                "SequenceNumber": SEQUENCE,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "NewImage": image,
                "OldImage": image,
            },
        }
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=files())
def test_every_accepted_purchase_is_exported_within_the_key_limit_and_the_glue_types(text):
    groups = defaultdict(list)
    for row in parse_tickets([text.encode("utf-8")]):
        if not isinstance(row, RowRejection):
            groups[row.key].append(row)
    for key, lines in groups.items():
        result = build_purchase(key, lines, SOURCE)
        if result.item is None:
            continue
        export = documents.build_export(change_from_record(stream_record(result.item)), CONTEXT, datetime.now(UTC))
        assert len(export.key.encode("utf-8")) <= limits.S3_MAX_KEY_BYTES
        parsed = keys.parse_object_key(export.key, PREFIX)
        assert (parsed.tenant_id, parsed.compra_id) == key
        assert all(1 <= len(v.encode("utf-8")) <= limits.GLUE_MAX_PARTITION_VALUE_BYTES for v in export.partition)
        document = json.loads(export.body, parse_float=Decimal)
        assert re.fullmatch(r"[1-9]\d{3}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", document["fecha"])
        for column, kind in COLUMNS.items():
            fits(kind, document[column], column)
        assert document["fecha"] == result.item["fecha"]
