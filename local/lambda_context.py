"""The Lambda context object the local pollers (and tests) hand to a handler: what Powertools and our handlers
read from it. ``LocalLambdaContext.of(function)`` takes name, ARN, memory and timeout from the deployed function
(local/stack.py ``DeployedFunction``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

LOCAL_ACCOUNT = "123456789012"  # moto's account
LOCAL_REGION = "us-east-1"


@dataclass
class LocalLambdaContext:
    function_name: str
    memory_limit_in_mb: int = 128
    timeout_seconds: int = 60
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            self.invoked_function_arn or f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self.log_stream_name = self.log_stream_name or f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + self.timeout_seconds

    @classmethod
    def of(cls, function: Any) -> LocalLambdaContext:
        """A fresh context (new request id, full time budget) of a deployed function."""
        return cls(
            function_name=function.name,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            invoked_function_arn=function.arn,
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
