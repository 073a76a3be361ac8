"""Paper estimate of throughput and cost per million purchases on real AWS (us-east-1).

Prices are the public on-demand list prices for us-east-1 as known on PRICES_AS_OF; they were NOT
re-checked from this machine (no internet access): verify them at https://aws.amazon.com/pricing/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PRICES_AS_OF = "2025-06 (DynamoDB on-demand after the 2024-11-01 price cut)"
LAMBDA_GB_SECOND = 0.0000166667  # x86, first 6 B GB-s/month tier
LAMBDA_REQUEST = 0.20 / 1e6
DYNAMODB_WRU = 0.625 / 1e6  # on-demand write request unit, standard table class
S3_PUT = 0.005 / 1000  # S3 Standard PUT/COPY/POST/LIST
S3_GET = 0.0004 / 1000
SQS_REQUEST = 0.40 / 1e6  # standard queue, beyond the free tier
GLUE_REQUEST = 1.00 / 1e6  # Data Catalog requests beyond the first million per month
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one full vCPU at 1,769 MB, proportionally less below
NEW_ON_DEMAND_TABLE_WRU_PER_S = 4000  # what a new on-demand table serves before it adapts


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one DynamoDB AttributeValue (wire format) by the documented sizing rules."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        digits = Decimal(inner).normalize().as_tuple().digits
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else math.ceil(len(inner) * 3 / 4)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(v) for k, v in inner.items())
    if kind in ("SS", "BS"):
        return sum(attribute_size({kind[0]: v}) for v in inner)
    if kind == "NS":
        return sum(attribute_size({"N": v}) for v in inner)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(image: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in image.items())


@dataclass(frozen=True)
class Inputs:
    rows_per_purchase: float
    item_bytes: float  # average purchase item size
    ingestion_rows_per_s: float  # our handler, measured with the added latency
    ingestion_cpu_s_per_row: float
    ingestion_memory_mb: int
    rows_per_file: int
    stream_batch: int
    stream_batch_s: float  # our stream handler, median seconds per batch, with the added latency
    stream_cpu_s_per_batch: float
    stream_memory_mb: int
    transactional_writes: bool = False  # TransactWriteItems: 2 WRU per started KB of each item written


def estimate(i: Inputs) -> list[tuple[str, str, float]]:
    """(line item, how it is computed, USD per million purchases)."""
    n = 1e6
    rows = n * i.rows_per_purchase
    vcpu = i.ingestion_memory_mb / LAMBDA_MB_PER_VCPU
    ingest_s = max(rows / i.ingestion_rows_per_s, rows * i.ingestion_cpu_s_per_row / min(vcpu, 1.0))
    files = rows / i.rows_per_file
    wru = _wru(i)
    batches = n / i.stream_batch
    s_vcpu = i.stream_memory_mb / LAMBDA_MB_PER_VCPU
    stream_s = batches * max(i.stream_batch_s, i.stream_cpu_s_per_batch / min(s_vcpu, 1.0))
    return [
        (
            "ingestion Lambda compute",
            f"{ingest_s:,.0f} s x {i.ingestion_memory_mb / 1024:g} GB (max of measured wall at 10 ms and CPU time "
            f"scaled to {vcpu:.2f} vCPU)",
            ingest_s * i.ingestion_memory_mb / 1024 * LAMBDA_GB_SECOND,
        ),
        ("ingestion Lambda requests", f"{files:,.0f} files of {i.rows_per_file:,} rows", files * LAMBDA_REQUEST),
        ("SQS requests", f"~3 per file (S3 send, Lambda receive, delete) x {files:,.0f}", 3 * files * SQS_REQUEST),
        ("S3 GET (CSV) + PUT (ingest report)", f"1 + 1 per file x {files:,.0f}", files * (S3_GET + S3_PUT)),
        (
            "DynamoDB writes",
            f"{wru} WRU per purchase (item ~{i.item_bytes:,.0f} B, "
            f"{'2 WRU per started KB: transactional write' if i.transactional_writes else '1 WRU per started KB'})",
            n * wru * DYNAMODB_WRU,
        ),
        (
            "stream Lambda compute",
            f"{batches:,.0f} batches of {i.stream_batch} x {stream_s / batches:.3f} s"
            f" x {i.stream_memory_mb / 1024:g} GB",
            stream_s * i.stream_memory_mb / 1024 * LAMBDA_GB_SECOND,
        ),
        ("stream Lambda requests", f"{batches:,.0f} invocations", batches * LAMBDA_REQUEST),
        ("DynamoDB Streams reads", "free when read by a Lambda trigger", 0.0),
        ("S3 PUT (JSON documents)", "1 PUT per purchase change", n * S3_PUT),
        (
            "Glue partition calls",
            f"at most 1 batch_create_partition per batch ({batches:,.0f})",
            batches * GLUE_REQUEST,
        ),
    ]


def _wru(i: Inputs) -> int:
    """Write units per purchase item written: 1 per started KB, twice that in a transaction."""
    return math.ceil(i.item_bytes / 1024) * (2 if i.transactional_writes else 1)


def throughput(i: Inputs) -> list[tuple[str, str]]:
    wru = _wru(i)
    per_shard = i.stream_batch / max(i.stream_batch_s, 1e-9)
    return [
        (
            "one ingestion invocation",
            f"~{i.ingestion_rows_per_s:,.0f} rows/s = "
            f"~{i.ingestion_rows_per_s / i.rows_per_purchase:,.0f} purchases/s (measured against the stand-in, "
            "10 ms per request)",
        ),
        (
            "new on-demand table",
            f"~{NEW_ON_DEMAND_TABLE_WRU_PER_S / wru:,.0f} purchases/s before it adapts "
            f"({NEW_ON_DEMAND_TABLE_WRU_PER_S} WRU/s, {wru} WRU per purchase)",
        ),
        (
            "stream export per shard",
            f"~{per_shard:,.0f} records/s (one batch of {i.stream_batch} at a time per "
            "shard, parallelization factor 1)",
        ),
    ]
