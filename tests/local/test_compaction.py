"""The compacted table gives the same answers as the JSON view: corrections, deletions, late and repeated changes.

The maintenance runs here are local.compaction.run — the very plan, state and MERGE SQL of compactarCompras,
transpiled to DuckDB over Parquet snapshots in the (moto) bucket — on a simulated clock.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from local import compaction as local_compaction
from local.athena_duckdb import LocalAthena
from tests.local.test_athena_duckdb import doc

pytestmark = pytest.mark.integration

TENANTS = ["t1", "t2", "Tienda Ñ/1"]
PRODUCTS = [(code, None, qty, price) for code, qty, price in [("A", 1, "1.10"), ("B", 2, "2.50"), ("C", 1, "0.99"),
            ("D", 3, None), ("E", 1, "10.00"), ("F", 4, "0.25")]]  # fmt: skip
START = datetime(2024, 5, 8, 10, 0, tzinfo=UTC)  # the simulated "now" of the first export
SETTINGS = local_compaction.settings()  # config/pipeline.yml functions.compaction
RECENT = SETTINGS.recent_days  # the frequent runs read the partitions of these last days


class World:
    """Exports change documents to the bucket like the stream function (sequence numbers grow)."""

    def __init__(self, aws, bucket: str, seed: int = 7) -> None:
        self.bucket = bucket
        self.s3 = aws.client("s3")
        self.rng = random.Random(seed)
        self.seq = 10**20
        self.purchases: dict[tuple[str, str], str] = {}  # (tenant, compra) -> fecha of the latest version
        self.written: list[tuple[str, bytes]] = []

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.written.append((key, body))

    def change(self, tenant, compra, fecha, event, at: datetime, seq: int | None = None) -> tuple[str, bytes]:
        if seq is None:
            self.seq += self.rng.randint(1, 1000)
            seq = self.seq
        products = self.rng.sample(PRODUCTS, self.rng.randint(1, 4))
        key, body = doc(tenant, compra, fecha, products, event=event, seq=seq, processed_at=at.isoformat())
        if event != "REMOVE":
            self.purchases[(tenant, compra)] = fecha
        return key, body

    def fecha(self, days_back: int) -> str:
        day = START - timedelta(days=days_back)
        return f"{day:%Y-%m-%d} {self.rng.randint(8, 21):02d}:{self.rng.randint(0, 59):02d}:00"


def compare(aws, bucket: str) -> int:
    """Every query, several parameter sets: compacted == JSON view. Returns the number of rows compared."""
    compared = 0
    with LocalAthena(bucket, "compras/", aws=aws) as athena:
        athena.refresh()
        every = "SELECT * FROM {} ORDER BY tenant_id, compra_id"
        assert (
            athena.run_sql(every.format("compras_vigentes")).rows
            == athena.run_sql(every.format("compras_actuales")).rows
        )
        for params in (
            {},
            {"tenant_id": "t1"},
            {"tenant_id": "Tienda Ñ/1", "date_from": "2024-05-03", "date_to": "2024-05-07"},
            {"date_from": "2024-05-06", "date_to": "2024-05-06"},
        ):
            for query in athena.query_file.selects():
                compacted = athena.run(query.name, **params)
                raw = athena.run(query.name, read_from="compras_actuales", **params)
                assert compacted == raw, (query.name, params)
                compared += len(raw.rows)
    return compared


def table_rows(aws, bucket: str) -> list[tuple]:
    with LocalAthena(bucket, "compras/", aws=aws) as athena:
        athena.refresh()
        return athena.run_sql("SELECT * FROM compras_iceberg ORDER BY tenant_id, compra_id").rows


def test_compacted_state_equals_the_json_view(stack):
    bucket = stack.names.bucket
    world = World(stack.aws, bucket)
    clock = START
    # 1. First exports: 45 purchases over the last 8 days, then the first (full) run.
    for number in range(45):
        tenant = TENANTS[number % 3]
        world.put(*world.change(tenant, f"c{number:03d}", world.fecha(number % 8), "INSERT", clock))
    first, _ = local_compaction.run(stack.aws, bucket, now=clock + timedelta(minutes=1))
    assert first.plan.mode == "full"
    assert compare(stack.aws, bucket) > 0

    # 2. Corrections (some move to another day), removals, a re-insert after a removal, new purchases, an
    #    exact re-export of an earlier change (same key, new processed_at) and a late OLDER change.
    clock = START + timedelta(minutes=30)
    live = sorted(world.purchases)
    for tenant, compra in live[:10]:
        world.put(*world.change(tenant, compra, world.fecha(world.rng.randint(0, RECENT)), "MODIFY", clock))
    # (the frequent run reads the partitions of the last recentDays days: these purchases are recent)
    recent = [k for k in live[10:] if world.purchases[k] >= f"{START - timedelta(days=RECENT):%Y-%m-%d}"]
    removed = recent[:4]
    assert len(recent) >= 6
    for tenant, compra in removed:
        world.put(*world.change(tenant, compra, world.purchases[(tenant, compra)], "REMOVE", clock))
    tenant, compra = removed[0]
    world.put(*world.change(tenant, compra, world.fecha(0), "INSERT", clock))  # back after its removal
    for number in range(45, 55):
        world.put(*world.change(TENANTS[number % 3], f"c{number:03d}", world.fecha(number % 2), "INSERT", clock))
    replay_key, replay_body = world.written[3]
    world.put(replay_key, replay_body)  # a stream retry writes the same object again
    second, _ = local_compaction.run(stack.aws, bucket, now=clock + timedelta(minutes=30))
    assert second.plan.mode == "recent"
    assert compare(stack.aws, bucket) > 0

    # 3. A change exported (stamped) before run 2 started but visible only after it: within the safety lag.
    clock = second.plan.started_at + timedelta(minutes=10)
    stamped = second.plan.started_at - timedelta(minutes=5)
    tenant, compra = recent[5]
    world.put(*world.change(tenant, compra, world.fecha(1), "MODIFY", stamped))
    # ... and a correction of a purchase older than recentDays: left for the next full run.
    oldest = f"{START - timedelta(days=6):%Y-%m-%d}~"
    old_tenant, old_compra = next(k for k in live[10:] if world.purchases[k] < oldest)
    world.put(*world.change(old_tenant, old_compra, world.purchases[(old_tenant, old_compra)], "MODIFY", clock))
    # ... and a late OLDER change of a purchase corrected in step 2 (that correction is outside this run's
    # window now): the table keeps the newer version.
    tenant, compra = live[0]
    world.put(*world.change(tenant, compra, world.fecha(1), "MODIFY", clock, seq=10**20 + 1))
    third, _ = local_compaction.run(stack.aws, bucket, now=clock + timedelta(hours=1))
    assert third.plan.since > START + timedelta(minutes=30)
    assert third.plan.mode == "recent"
    with LocalAthena(bucket, "compras/", aws=stack.aws) as athena:
        athena.refresh()
        sql = "SELECT tenant_id, compra_id, metadata.sequence_number FROM {} ORDER BY 1, 2"
        compacted = athena.run_sql(sql.format("compras_vigentes")).rows
        raw = athena.run_sql(sql.format("compras_actuales")).rows
    differences = set(raw) ^ set(compacted)
    assert {(t, cid) for t, cid, _ in differences} == {(old_tenant, old_compra)}

    # 4. The full run (fullMergeEveryHours later) merges it: everything equal again.
    full_at = START + SETTINGS.full_every + timedelta(hours=2)
    fourth, _ = local_compaction.run(stack.aws, bucket, now=full_at)
    assert fourth.plan.mode == "full"
    assert compare(stack.aws, bucket) > 0

    # 5. Idempotent and restartable: a repeated run, and a run from an older state (a run that crashed before
    #    saving, or a concurrent one), leave the table as it is.
    before = table_rows(stack.aws, bucket)
    local_compaction.run(stack.aws, bucket, now=full_at + timedelta(minutes=5))
    assert table_rows(stack.aws, bucket) == before
    store = local_compaction.state_store(stack.aws, bucket)
    store.save(first.state)
    local_compaction.run(stack.aws, bucket, now=full_at + timedelta(hours=1))
    assert table_rows(stack.aws, bucket) == before
    assert compare(stack.aws, bucket) > 0


def test_tombstones_block_late_older_changes_and_are_purged_after_retention(stack):
    bucket = stack.names.bucket
    world = World(stack.aws, bucket, seed=11)
    world.put(*world.change("t1", "c1", world.fecha(0), "INSERT", START))
    world.put(*world.change("t1", "c1", world.fecha(0), "REMOVE", START))
    local_compaction.run(stack.aws, bucket, now=START + timedelta(minutes=1))
    local_compaction.run(stack.aws, bucket, now=START + timedelta(hours=1))
    rows = table_rows(stack.aws, bucket)
    assert len(rows) == 1 and rows[0][-1] is True and rows[0][5] is None  # a tombstone: no products
    # A late re-export of the INSERT (older sequence number, processed after the REMOVE left the window) must
    # not bring it back.
    insert_key, insert_body = world.written[0]
    late_at = START + timedelta(hours=1, minutes=10)
    world.put(insert_key, insert_body.replace(START.isoformat().encode(), late_at.isoformat().encode()))
    third, _ = local_compaction.run(stack.aws, bucket, now=START + timedelta(hours=2))
    assert third.plan.since > START  # the REMOVE is not re-read: only the tombstone protects the purchase
    assert compare(stack.aws, bucket) == 0  # nothing live, in either view
    # After the retention the tombstone goes (the purge runs on the vacuum cadence), and VACUUM removes the
    # files of older snapshots.
    result, _ = local_compaction.run(stack.aws, bucket, now=START + timedelta(days=31))
    assert [s.step for s in result.steps] == ["create", "merge", "purge", "optimize", "vacuum"]
    assert table_rows(stack.aws, bucket) == []
    snapshot = local_compaction.current_snapshot(stack.aws, bucket)
    listed = stack.aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="iceberg/compras_iceberg/data/")
    assert {o["Key"] for o in listed.get("Contents", [])} == {f["key"] for f in snapshot["files"]}
