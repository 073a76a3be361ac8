"""boto3 resources over a local stack's clients (``stack.aws``): for tests that read or write Python values."""

from __future__ import annotations

from typing import Any

import boto3


def purchases_table(stack: Any) -> Any:
    """The stack's purchases table as a boto3 ``Table`` resource, on the stand-in ``stack.aws`` talks to."""
    return boto3.session.Session().resource("dynamodb", **stack.aws.connection_options()).Table(stack.names.table)
