"""Prometheus metrics, summed over every worker process.

``mdtflag serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start;
each worker writes its counters there and ``/metrics`` (answered by any worker) adds them up.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "DECISIONS", "EVALUATION", "FEEDBACK", "LATENCY", "REQUESTS", "render"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("mdtflag_http_requests_total", "HTTP requests answered", ["endpoint", "status"])
LATENCY = Histogram("mdtflag_http_request_duration_seconds", "Time from request start to response",
                    ["endpoint"], buckets=_BUCKETS)
EVALUATION = Histogram("mdtflag_evaluation_seconds", "Time spent evaluating one patient", buckets=_BUCKETS)
DECISIONS = Counter("mdtflag_decisions_total", "Evaluations by decision and level", ["decision", "level"])
FEEDBACK = Counter("mdtflag_feedback_total", "CDS Hooks card feedback by outcome", ["outcome"])


def render() -> bytes:
    """The exposition text: every worker's figures when multi-process, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
