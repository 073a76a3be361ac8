from __future__ import annotations

import posixpath
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdas.domain import keys

WHEN = datetime(2026, 11, 23, 19, 27, 47, tzinfo=UTC)
ids = st.text(min_size=1, max_size=40)
unsafe_ids = st.sampled_from(["/", "..", ".", "a/../b", "../../etc", " ", "tienda ñ", "a\x00b", "\n", "~", "%2F", "é"])


def key_for(tenant_id: str, compra_id: str, **overrides) -> str:
    args = {
        "event_name": "INSERT",
        "tenant_id": tenant_id,
        "compra_id": compra_id,
        "fecha": "2026-03-07 10:00:00",
        "approximate_creation_time": WHEN,
        "sequence_number": "4000000000000000000123",
    }
    args.update(overrides)
    return keys.object_key(**args)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("store-1", "store-1"),
        ("B_0001", "B_0001"),
        ("a/b", "a~2Fb"),
        ("..", "~2E~2E"),
        ("Tienda Ñ", "Tienda~20~C3~91"),
        ("~", "~7E"),
        ("a\x00", "a~00"),
    ],
)
def test_encode_id_examples(raw, encoded):
    assert keys.encode_id(raw) == encoded
    assert keys.decode_id(encoded) == raw


@given(ids)
def test_round_trip(value):
    assert keys.decode_id(keys.encode_id(value)) == value


@given(ids | unsafe_ids)
def test_encoded_id_is_one_safe_segment(value):
    encoded = keys.encode_id(value)
    assert encoded.isascii()
    assert "/" not in encoded and "." not in encoded and " " not in encoded
    assert all(c.isalnum() or c in "_-~" for c in encoded)


@given(ids, ids)
def test_encoding_is_injective(a, b):
    if a != b:
        assert keys.encode_id(a) != keys.encode_id(b)


def test_empty_id_is_rejected():
    with pytest.raises(keys.InvalidIdError, match="non-empty"):
        keys.encode_id("")


@pytest.mark.parametrize("segment", ["", "a/b", "a.b", "~2", "~zz", "~2f", "a b", "ñ", "~41", "~C3"])
def test_decode_rejects_what_encode_cannot_produce(segment):
    with pytest.raises(keys.InvalidIdError):
        keys.decode_id(segment)


@given(ids | unsafe_ids, ids | unsafe_ids)
def test_object_never_leaves_its_partition(tenant_id, compra_id):
    key = key_for(tenant_id, compra_id)
    partition = keys.partition_prefix(tenant_id, "2026", "03", "07")
    assert key.startswith(partition)
    assert posixpath.normpath(key) == key
    assert key.count("/") == 5
    parsed = keys.parse_object_key(key)
    assert (parsed.tenant_id, parsed.compra_id) == (tenant_id, compra_id)
    assert parsed.partition == (tenant_id, "2026", "03", "07")


def test_object_key_layout():
    key = key_for("store 1", "B/7", event_name="REMOVE")
    assert key == "compras/store~201/2026/03/07/remove_B~2F7_20261123_192747_4000000000000000000123.json"
    assert keys.parse_object_key(key) == keys.ObjectKey(
        tenant_id="store 1",
        year="2026",
        month="03",
        day="07",
        event_name="REMOVE",
        compra_id="B/7",
        timestamp="20261123_192747",
        sequence_number="4000000000000000000123",
    )


@pytest.mark.parametrize("event_name", keys.EVENT_NAMES)
def test_key_names_the_event_in_lower_case_and_parses_back_to_the_stream_name(event_name):
    key = key_for("s", "c", event_name=event_name)
    assert key.split("/")[-1].startswith(f"{event_name.lower()}_c_20261123_192747_")
    assert keys.parse_object_key(key).event_name == event_name


def test_keys_written_with_upper_case_event_names_still_parse():
    # Objects exported before the lower-case layout (INSERT_...) stay readable for partition recovery.
    legacy = "compras/s/2026/03/07/MODIFY_c_20261123_192747_4000000000000000000123.json"
    assert keys.parse_object_key(legacy) == keys.parse_object_key(legacy.replace("/MODIFY_", "/modify_"))


def test_object_key_is_a_pure_function_of_the_record():
    assert key_for("s", "c") == key_for("s", "c")
    assert key_for("s", "c") != key_for("s", "c", sequence_number="4000000000000000000124")
    assert key_for("s", "c") != key_for("s", "c", event_name="MODIFY")


def test_timestamp_is_utc():
    madrid = timezone(timedelta(hours=1))
    assert key_for("s", "c", approximate_creation_time=WHEN.astimezone(madrid)) == key_for("s", "c")


def test_compra_id_that_looks_like_the_suffix_parses_back():
    tricky = "x_20200101_000000_5"
    assert keys.parse_object_key(key_for("s", tricky)).compra_id == tricky


def test_custom_prefix():
    key = key_for("s", "c", prefix="exports")
    assert key.startswith("exports/s/2026/03/07/")
    assert keys.parse_object_key(key, prefix="exports/").compra_id == "c"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event_name": "UPSERT"}, "event name"),
        ({"sequence_number": "12a"}, "sequence number"),
        ({"approximate_creation_time": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"compra_id": "ñ" * 200}, "S3 allows 1024"),
    ],
)
def test_object_key_rejects_bad_input(overrides, message):
    with pytest.raises(keys.InvalidObjectKeyError, match=message):
        key_for(**{"tenant_id": "s", "compra_id": "c", **overrides})


def test_object_key_rejects_bad_fecha():
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM:SS"):
        key_for("s", "c", fecha="07/03/2026")


@pytest.mark.parametrize(
    "key",
    [
        "compras/s/2026/03/07/insert_c_20261123_192747.json",
        "compras/s/2026/3/07/insert_c_20261123_192747_1.json",
        "other/s/2026/03/07/insert_c_20261123_192747_1.json",
        "compras/a.b/2026/03/07/insert_c_20261123_192747_1.json",
        "compras/s/2026/03/07/UPSERT_c_20261123_192747_1.json",
        "compras/s/2026/03/07/Insert_c_20261123_192747_1.json",
        "compras/s/2026/03/07/upsert_c_20261123_192747_1.json",
        "compras/s/x/2026/03/07/insert_c_20261123_192747_1.json",
    ],
)
def test_parse_rejects_foreign_keys(key):
    with pytest.raises(keys.InvalidObjectKeyError):
        keys.parse_object_key(key)


def test_partition_values_use_the_real_tenant_id():
    assert keys.partition_values("a/b", "2026-12-31 23:59:59") == ("a/b", "2026", "12", "31")
