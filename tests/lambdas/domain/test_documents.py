from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from boto3.dynamodb.types import TypeSerializer

from lambdas.domain import documents, keys
from lambdas.stream.changes import change_from_record

CONTEXT = documents.ExportContext(stage="test", default_currency="EUR", processed_by="actualizarComprasStream")
PROCESSED_AT = datetime(2026, 11, 23, 20, 0, 0, tzinfo=UTC)
_serializer = TypeSerializer()


def item(**overrides):
    base = {
        "tenant_id": "store-1",
        "compra_id": "B1",
        "user_id": "u-9",
        "fecha": "2026-03-07 10:15:00",
        "moneda": "USD",
        "productos": [
            {
                "codigo": "P1",
                "nombre": "Leche",
                "categoria": "lacteos",
                "cantidad": Decimal(2),
                "precio_unitario": Decimal("99.99"),
                "ticket_id": "T1",
            },
            {
                "codigo": "P2",
                "nombre": "Pan",
                "categoria": "panaderia",
                "cantidad": Decimal(3),
                "precio_unitario": Decimal("0.10"),
                "ticket_id": "T1",
            },
        ],
        "source_bucket": "b",
        "source_key": "uploads/x.csv",
        "source_etag": "etag",
        "ingested_at": "2026-11-23T19:27:47Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def build_export(rec, context, processed_at):
    """The stream layer's conversion, then the domain (what StreamExporter does)."""
    return documents.build_export(change_from_record(rec), context, processed_at)


def build_document(rec, context, processed_at):
    return documents.build_document(change_from_record(rec), context, processed_at)


def ddb(image: dict) -> dict:
    return {k: _serializer.serialize(v) for k, v in image.items()}


def record(event_name="INSERT", new=None, old=None, sequence="4000000000000000000001", raw_new=None, raw_old=None):
    stream = {
        "ApproximateCreationDateTime": 1795460867,
        "Keys": {"tenant_id": {"S": "store-1"}, "compra_id": {"S": "B1"}},
        "SequenceNumber": sequence,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None or raw_new is not None:
        stream["NewImage"] = raw_new if raw_new is not None else ddb(new)
    if old is not None or raw_old is not None:
        stream["OldImage"] = raw_old if raw_old is not None else ddb(old)
    return DynamoDBRecord(
        {
            "eventID": "e-1",
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": stream,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        }
    )


def test_insert_document_follows_the_contract():
    doc = build_document(record(new=item()), CONTEXT, PROCESSED_AT)
    assert doc == {
        "compra_id": "B1",
        "user_id": "u-9",
        "tenant_id": "store-1",
        "fecha": "2026-03-07 10:15:00",
        "productos": [
            {
                "codigo": "P1",
                "nombre": "Leche",
                "categoria": "lacteos",
                "precio_unitario": Decimal("99.99"),
                "cantidad": 2,
                "ticket_id": "T1",
            },
            {
                "codigo": "P2",
                "nombre": "Pan",
                "categoria": "panaderia",
                "precio_unitario": Decimal("0.10"),
                "cantidad": 3,
                "ticket_id": "T1",
            },
        ],
        "resumen": {"total_productos": 2, "total_cantidad": 5, "total_precio": Decimal("200.28"), "moneda": "USD"},
        "metadata": {
            "event_name": "INSERT",
            "event_source": "aws:dynamodb",
            "aws_region": "us-east-1",
            "processed_at": "2026-11-23T20:00:00Z",
            "processed_by": "actualizarComprasStream",
            "stage": "test",
            "event_id": "e-1",
            "sequence_number": "4000000000000000000001",
            "approximate_creation_time": "2026-11-23T19:07:47Z",
        },
    }


def test_money_is_exact_in_the_serialized_line():
    line = build_export(record(new=item(productos=[item()["productos"][0]])), CONTEXT, PROCESSED_AT).body.decode()
    assert '"total_precio":199.98,' in line
    assert '"precio_unitario":99.99,' in line
    assert json.loads(line, parse_float=Decimal)["resumen"]["total_precio"] == Decimal("199.98")


def test_modify_uses_new_image_and_remove_uses_old_image():
    old, new = item(user_id="old-user"), item(user_id="new-user")
    modify = build_document(record("MODIFY", new=new, old=old), CONTEXT, PROCESSED_AT)
    remove = build_document(record("REMOVE", old=old), CONTEXT, PROCESSED_AT)
    assert (modify["user_id"], modify["metadata"]["event_name"]) == ("new-user", "MODIFY")
    assert (remove["user_id"], remove["metadata"]["event_name"]) == ("old-user", "REMOVE")


def test_missing_optional_fields():
    product = {"codigo": "P1", "cantidad": Decimal(4), "precio_unitario": None, "ticket_id": "T9"}
    doc = build_document(record(new=item(user_id=None, moneda=None, productos=[product])), CONTEXT, PROCESSED_AT)
    assert doc["user_id"] is None
    assert doc["resumen"] == {"total_productos": 1, "total_cantidad": 4, "total_precio": None, "moneda": "EUR"}
    assert doc["productos"] == [
        {"codigo": "P1", "nombre": None, "categoria": None, "precio_unitario": None, "cantidad": 4, "ticket_id": "T9"}
    ]


def test_total_precio_sums_only_lines_with_a_known_price():
    products = item()["productos"]
    products[1]["precio_unitario"] = None
    doc = build_document(record(new=item(productos=products)), CONTEXT, PROCESSED_AT)
    assert doc["resumen"]["total_precio"] == Decimal("199.98")
    assert doc["resumen"]["total_cantidad"] == 5


def test_empty_purchase_has_zero_totals():
    doc = build_document(record(new=item(productos=[])), CONTEXT, PROCESSED_AT)
    assert doc["resumen"] == {"total_productos": 0, "total_cantidad": 0, "total_precio": None, "moneda": "USD"}


def test_extra_attributes_including_number_sets_are_not_exported():
    doc = build_document(record(new=item(tags={"a", "b"}, scores={Decimal("1.5"), Decimal(2)})), CONTEXT, PROCESSED_AT)
    assert "tags" not in doc and "scores" not in doc
    assert "source_key" not in doc


def test_number_set_where_a_number_is_required_is_malformed():
    product = dict(item()["productos"][0], precio_unitario={Decimal(1), Decimal(2)})
    with pytest.raises(documents.MalformedRecordError, match=r"productos\[0\].*precio_unitario.*number set"):
        build_document(record(new=item(productos=[product])), CONTEXT, PROCESSED_AT)


def test_serializer_writes_number_sets_sorted_and_exact():
    line = documents.to_json_line({"ns": {Decimal("10"), Decimal("2.50"), Decimal("-1E+2")}, "ss": {"b", "a"}})
    assert line == b'{"ns":[-100,2.50,10],"ss":["a","b"]}\n'


def test_serializer_is_one_line_and_keeps_unicode():
    line = documents.to_json_line({"nombre": "Café\nñ", "n": Decimal("1E-7"), "ok": True, "none": None})
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert line.decode() == '{"nombre":"Café\\nñ","n":0.0000001,"ok":true,"none":null}\n'


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), 1.5, b"bytes"])
def test_serializer_rejects_inexact_or_unknown_values(value):
    with pytest.raises((TypeError, ValueError)):
        documents.to_json_line({"x": value})


def test_large_precise_numbers_are_not_rounded():
    product = dict(item()["productos"][0], precio_unitario=Decimal("12345678901234.5678"), cantidad=Decimal(3))
    export = build_export(record(new=item(productos=[product])), CONTEXT, PROCESSED_AT)
    assert b'"total_precio":37037036703703.7034,' in export.body


def test_unsafe_ids_stay_in_their_partition_and_document_keeps_real_ids():
    export = build_export(record(new=item(tenant_id="../evil tenant", compra_id="a/b ñ\x01")), CONTEXT, PROCESSED_AT)
    assert export.document["tenant_id"] == "../evil tenant"
    assert export.document["compra_id"] == "a/b ñ\x01"
    assert export.partition == ("../evil tenant", "2026", "03", "07")
    assert export.key.startswith("compras/~2E~2E~2Fevil~20tenant/2026/03/07/insert_a~2Fb~20~C3~B1~01_")
    parsed = keys.parse_object_key(export.key)
    assert (parsed.tenant_id, parsed.compra_id) == ("../evil tenant", "a/b ñ\x01")


def test_export_key_and_partition():
    export = build_export(record("MODIFY", new=item(), old=item()), CONTEXT, PROCESSED_AT)
    assert export.key == "compras/store-1/2026/03/07/modify_B1_20261123_190747_4000000000000000000001.json"
    assert export.partition == ("store-1", "2026", "03", "07")
    assert export.sequence_number == "4000000000000000000001"
    assert json.loads(export.body)["compra_id"] == "B1"


def test_float_approximate_creation_time_from_moto_is_accepted():
    rec = record(new=item())
    rec.raw_event["dynamodb"]["ApproximateCreationDateTime"] = 1795460867.918
    assert build_document(rec, CONTEXT, PROCESSED_AT)["metadata"]["approximate_creation_time"] == (
        "2026-11-23T19:07:47Z"
    )


@pytest.mark.parametrize(
    ("rec", "message"),
    [
        (record("REMOVE", new=item()), "REMOVE record has no OldImage"),
        (record("INSERT", old=item()), "INSERT record has no NewImage"),
        (record("UPSERT", new=item()), "eventName 'UPSERT'"),
        (record(new=item(compra_id=None)), "attribute 'compra_id' is missing"),
        (record(new=item(tenant_id="")), "attribute 'tenant_id' must be a non-empty string"),
        (record(new=item(fecha="2026-13-01 00:00:00")), "attribute 'fecha'.*YYYY-MM-DD HH:MM:SS"),
        (record(new=item(productos="P1")), "'productos' must be a list of maps, got str"),
        (record(new=item(productos=["P1"])), r"productos\[0\]: must be a map"),
        (record(new=item(user_id=Decimal(5))), "'user_id' must be a string, got Decimal"),
        (record(raw_new={"tenant_id": {"X": "1"}}), "NewImage is not valid DynamoDB JSON"),
        (record(raw_new={"tenant_id": {"N": "abc"}}), "NewImage is not valid DynamoDB JSON"),
        (record(sequence="not-a-number", new=item()), "SequenceNumber 'not-a-number'"),
    ],
)
def test_malformed_records_raise_a_clear_error(rec, message):
    with pytest.raises(documents.MalformedRecordError, match=message) as info:
        build_export(rec, CONTEXT, PROCESSED_AT)
    assert "eventID=e-1" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cantidad", Decimal("1.5"), "'cantidad' must be an integer number > 0"),
        ("cantidad", Decimal(0), "'cantidad' must be an integer number > 0"),
        ("cantidad", None, "'cantidad' must be an integer number > 0"),
        ("precio_unitario", Decimal("-1"), r"'precio_unitario' Decimal\('-1'\) must be a number >= 0"),
        ("precio_unitario", Decimal("1.23456"), "more than 4 decimal places"),
        ("precio_unitario", Decimal("1E+14"), "more than 14 integer digits"),
        ("cantidad", Decimal(2**31), "larger than 2147483647"),
        ("precio_unitario", "9.99", "'precio_unitario' must be a number >= 0 or NULL, got str"),
        ("codigo", None, "'codigo' is missing"),
        ("ticket_id", Decimal(1), "'ticket_id' must be a string, got Decimal"),
    ],
)
def test_malformed_products(field, value, message):
    product = dict(item()["productos"][0])
    if value is None:
        product.pop(field)
    else:
        product[field] = value
    with pytest.raises(documents.MalformedRecordError, match=message):
        build_document(record(new=item(productos=[product])), CONTEXT, PROCESSED_AT)


def test_missing_approximate_creation_time_is_malformed():
    rec = record(new=item())
    del rec.raw_event["dynamodb"]["ApproximateCreationDateTime"]
    with pytest.raises(documents.MalformedRecordError, match="ApproximateCreationDateTime"):
        build_export(rec, CONTEXT, PROCESSED_AT)


# -- issue 15: the minimal item contract (items written by other producers) ------------------------------


def original_design_item(**overrides):
    """The original design's item: no ticket_id, categoria, moneda nor source attributes."""
    base = {
        "compra_id": "C-1001",
        "user_id": "user-7",
        "tenant_id": "tienda-1",
        "fecha": "2024-01-15T10:30:00Z",
        "productos": [
            {"codigo": "P-1", "nombre": "Leche", "precio_unitario": Decimal("1.25"), "cantidad": Decimal(2)},
            {"codigo": "P-2", "nombre": "Pan", "precio_unitario": Decimal("0.80"), "cantidad": Decimal(1)},
        ],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("event", ["INSERT", "MODIFY", "REMOVE"])
def test_original_design_items_are_exported_with_documented_defaults(event):
    image = original_design_item()
    rec = record(event, new=None if event == "REMOVE" else image, old=image if event != "INSERT" else None)
    export = build_export(rec, CONTEXT, PROCESSED_AT)
    doc = json.loads(export.body)
    assert doc["fecha"] == "2024-01-15 10:30:00"  # normalised like ingestion's timestamps
    assert export.partition == ("tienda-1", "2024", "01", "15")
    assert doc["productos"] == [
        {
            "codigo": "P-1",
            "nombre": "Leche",
            "categoria": None,
            "precio_unitario": 1.25,
            "cantidad": 2,
            "ticket_id": None,
        },
        {"codigo": "P-2", "nombre": "Pan", "categoria": None, "precio_unitario": 0.8, "cantidad": 1, "ticket_id": None},
    ]
    assert doc["resumen"] == {"total_productos": 2, "total_cantidad": 3, "total_precio": 3.3, "moneda": "EUR"}
    assert doc["user_id"] == "user-7"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fecha": "15/01/2024"}, "attribute 'fecha' '15/01/2024' is not a timestamp"),
        ({"fecha": "0999-01-01 00:00:00"}, "outside years 1000-9999"),
        ({"tenant_id": "t" * 1100}, "Glue partition value"),
        ({"compra_id": "ñ" * 200}, "export's S3 key"),
        (
            {"productos": [{"codigo": "P", "precio_unitario": Decimal("99999999999999"), "cantidad": Decimal(2)}]},
            "total_precio",
        ),
        (
            {"productos": [{"codigo": "P", "cantidad": Decimal(2**31 - 1)}, {"codigo": "Q", "cantidad": 1}]},
            "total_cantidad",
        ),
        ({"productos": [{"nombre": "x", "cantidad": Decimal(1)}]}, "attribute 'codigo' is missing"),
    ],
)
def test_items_that_cannot_reach_the_glue_table_are_malformed_with_a_reason(overrides, message):
    with pytest.raises(documents.MalformedRecordError, match=message):
        build_export(record(new=original_design_item(**overrides)), CONTEXT, PROCESSED_AT)
