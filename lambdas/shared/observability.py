"""Powertools Logger (structured JSON) and Metrics (CloudWatch EMF), one pair per function, configured explicitly.

Each function's composition root (``build_handler`` in lambdas/<function>/handler.py) makes its pair from its
settings' ``observability`` (lambdas.shared.settings.Observability: service name, metrics namespace and log level,
the POWERTOOLS_* variables of the function's environment, parsed with the rest of its settings). Nothing is read
from the process environment when a handler module is imported, so local runs and tests build functions from the
deployed configuration without copying it into ``os.environ`` (on Lambda serverless.yml still sets the same
variables, for Powertools' own features).

Local runs and tests build several functions in one process. Powertools' ``Metrics`` shares its metric set and
dimensions across instances, and a ``Logger`` of the same service shares its handler, so neither may carry
per-function state here: the logger adds no function key (``inject_lambda_context`` adds ``function_name`` to
every line) and the metrics are ``EphemeralMetrics``, which keep their own set and their own ``function``
dimension.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics

if TYPE_CHECKING:
    from lambdas.shared.settings import Observability


class _ProcessStdout:
    """The process's standard output as it is when a line is written. The first Logger of a service makes the
    handler all later ones share; it is made when a function is built (not at import), and ``sys.stdout`` may be
    replaced meanwhile (a test's capture, a redirect): the logs still go where ``print`` writes."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_STDOUT = _ProcessStdout()


def logger_for(observability: Observability) -> Logger:
    """The JSON logger of the service (the function name comes with the Lambda context on every line)."""
    return Logger(service=observability.service_name, level=observability.log_level, stream=_STDOUT)


def metrics_for(function: str, observability: Observability) -> EphemeralMetrics:
    """EMF metrics in the service's namespace, dimensioned by service and function."""
    metrics = EphemeralMetrics(namespace=observability.metrics_namespace, service=observability.service_name)
    metrics.set_default_dimensions(function=function)
    return metrics
