"""compactarCompras' adapters: the state object in S3 and the Athena engine that runs the maintenance SQL.

The decisions (what a run does, the SQL, when the watermark moves) are in lambdas.domain.compaction; this
module only carries them out: each statement is run on Athena in the stage's workgroup and database and waited
for (a FAILED/CANCELLED query raises with Athena's reason); the state is one JSON object
(``<compaction prefix>state.json``) read and written through S3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lambdas.adapters import athena, s3
from lambdas.adapters.clients import AwsClients
from lambdas.domain.compaction import CompactionState, Statement, StepResult

STATE_OBJECT = "state.json"


@dataclass
class S3StateStore:
    """The maintenance state: s3://bucket/<prefix>state.json (absent = no run committed yet)."""

    aws: AwsClients
    bucket: str
    prefix: str

    @property
    def key(self) -> str:
        return f"{self.prefix}{STATE_OBJECT}"

    def load(self) -> CompactionState:
        try:
            _, chunks = s3.open_object(self.aws, self.bucket, self.key)
        except s3.ObjectNotFound:
            return CompactionState()
        return CompactionState.from_json(b"".join(chunks))

    def save(self, state: CompactionState) -> None:
        s3.put_bytes(self.aws, self.bucket, self.key, state.to_json().encode("utf-8"), content_type="application/json")


@dataclass
class AthenaEngine:
    """Runs each statement on Athena and waits for it, within the time left (``deadline``: monotonic seconds)."""

    aws: AwsClients
    workgroup: str
    database: str
    deadline: float
    monotonic: Callable[[], float] = time.monotonic

    def execute(self, statement: Statement) -> StepResult:
        remaining = self.deadline - self.monotonic()
        if remaining <= 0:
            raise athena.AthenaQueryTimeout(
                f"no time left to start the {statement.step} statement",
                query_execution_id="",
                last_state="NOT_STARTED",
            )
        started = self.monotonic()
        result = athena.run_query(
            self.aws,
            statement.sql,
            workgroup=self.workgroup,
            database=self.database,
            timeout_seconds=remaining,
            label=f"compaction {statement.step}",
        )
        return StepResult(
            step=statement.step,
            query_id=result.query_execution_id,
            data_scanned_bytes=result.data_scanned_bytes,
            seconds=self.monotonic() - started,
        )
