"""A batch's metrics as TorchServe's `[METRICS]` lines, logged together in one record.

TorchServe's metric cache logs one record per `add_metric` call, each with a hostname
lookup, every request id of the batch and a flush of the worker's stdout, the pipe the
frontend reads metrics from line by line: 9.5 % of a sentiment_fast worker's busy time at
c=32 went there (py-spy, docs/performance/tuning.md run I).  The same lines built here and
logged as one record reach the frontend in one write and are parsed the same way
(`Metric.parse` of the 0.12 jar: request ids are optional, and Prometheus ignores them).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Sequence

from ts.metrics.dimension import Dimension
from ts.metrics.unit import Units

logger = logging.getLogger(__name__)
UNIT_NAMES = Units().units  # "count" -> "Count", "s" -> "Seconds", as CachingMetric names them
HOSTNAME = socket.gethostname()  # CachingMetric asks for it on every metric


@dataclass
class BatchMetrics:
    """The metrics of one batch, all with `dimensions` (plus a metric's own extra ones)."""

    dimensions: Sequence[Dimension]
    lines: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str = "count", histogram: bool = False,
            extra: Sequence[Dimension] = ()) -> None:  # fmt: skip
        """One metric, as CachingMetric.emit_metrics prints it (a counter unless `histogram`)."""
        dimensions = ",".join(f"{d.name}:{d.value}" for d in (*self.dimensions, *extra))
        kind = "HISTOGRAM" if histogram else "COUNTER"
        self.lines.append(f"[METRICS]{name}.{UNIT_NAMES[unit]}:{value}|#{dimensions}|#type:{kind}"
                          f"|#hostname:{HOSTNAME},{int(time.time())}")  # fmt: skip

    def emit(self) -> None:
        """Every line in one log record: one write to the frontend's pipe per batch."""
        if self.lines:
            logger.info("\n".join(self.lines))
