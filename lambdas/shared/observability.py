"""Powertools Logger (structured JSON) and Metrics (CloudWatch EMF), one pair per function."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics


def logger_for(function: str) -> Logger:
    """A JSON logger; service name from POWERTOOLS_SERVICE_NAME, `function` added to every line."""
    logger = Logger()
    logger.append_keys(function=function)
    return logger


def metrics_for(function: str) -> Metrics:
    """EMF metrics in namespace POWERTOOLS_METRICS_NAMESPACE, dimensioned by function."""
    metrics = Metrics()
    metrics.set_default_dimensions(function=function)
    return metrics
