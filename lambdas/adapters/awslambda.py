"""AWS Lambda adapter: asynchronous invocation (the report function starts its own report jobs)."""

from __future__ import annotations

import json
from typing import Any

from lambdas.adapters.clients import AwsClients


class InvokeError(RuntimeError):
    """Lambda did not accept an asynchronous invocation."""


def invoke_async(aws: AwsClients, function: str, payload: Any) -> None:
    """Queue one asynchronous invocation (InvocationType Event) of `function` (name or ARN) with `payload` as
    its JSON event. Lambda answers 202 once the event is queued; anything else raises InvokeError."""
    response = aws.client("lambda").invoke(
        FunctionName=function,
        InvocationType="Event",
        Payload=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )
    status = response.get("StatusCode")
    if status != 202:
        raise InvokeError(f"asynchronous invocation of {function} was not queued: status {status}")
