"""Prometheus metrics of the HTTP service, in a registry owned by the app.

Each app has its own ``CollectorRegistry`` so that several apps (tests) can live in one
process; the prediction log registers its own families in the same registry.

With ``WORKERS`` > 1 every worker's metrics live in prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, which the supervisor sets for its workers only, fresh for
each start: serving/supervisor.py), and ``GET /metrics`` answered by any worker reports the
whole server: counters and histograms summed over workers, dead ones included. Gauges say
how they combine (``multiprocess_mode``; ignored by one process). As a gauge's callback
cannot run in another process, gauges are set from their sources by ``sample()``: at each
scrape, and every ``SAMPLE_SECONDS`` in every worker, so another worker's values are at
most that old.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter as Tally
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from serving.model import Prediction

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own switch to multiprocess mode, read when it is imported."""
SAMPLE_SECONDS = 1.0


class Metrics:
    """Every metric family of the HTTP side."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        directory = os.environ.get(MULTIPROC_ENV)
        self.multiprocess = directory is not None
        """True in a worker of ``serve --workers N``: /metrics reports every worker."""
        self._exposed = r
        if directory is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=directory)  # type: ignore[no-untyped-call]
        self._samplers: list[Callable[[], None]] = []
        self.requests = Counter(
            "skship_http_requests",
            "HTTP requests by route template, method and status ('unmatched' for no route).",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "skship_http_request_duration_seconds",
            "Time from request start to the end of the response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "skship_predictions",
            "Predicted instances by model, version and class ('value' for regressors).",
            ["model", "model_version", "prediction"],
            registry=r,
        )
        self.out_of_range = Counter(
            "skship_out_of_range_values",
            "Input values outside the training range or categories not seen in training "
            "(served, and flagged in the response), by model and feature.",
            ["model", "feature"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "skship_predict_batch_rows",
            "Rows per pipeline call after micro-batching.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "skship_model_info",
            "The models being served (value 1), by name, version and artifact digest; with "
            "workers, 1 while any live worker serves it (0: served earlier).",
            ["name", "version", "digest"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reloads = Counter(
            "skship_model_reloads",
            "Model loads and reloads by model and outcome (ok, failed).",
            ["model", "outcome"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._served: set[tuple[str, str, str]] = set()
        self.refused = Counter(
            "skship_predict_refused",
            "Predict requests refused with 503, by reason (no_model, log_full, log_error).",
            ["reason"],
            registry=r,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(
        self, model: str, version: str, feature_names: tuple[str, ...], result: Prediction
    ) -> None:
        """Once per pipeline call: its size, predictions by class, out-of-range values."""
        self.batch_rows.observe(len(result.labels))
        if result.probabilities is None:
            self.predictions.labels(model, version, "value").inc(len(result.labels))
        else:
            for label, count in Tally(result.labels).items():
                self.predictions.labels(model, version, label).inc(count)
        if result.outside is not None:
            for index, count in enumerate(result.outside.sum(axis=0).tolist()):
                if count:
                    self.out_of_range.labels(model, feature_names[index]).inc(count)

    def set_model(self, name: str, version: str, digest: str) -> None:
        """``name`` serves ``version`` now (its earlier version's series is removed)."""
        for labels in [key for key in self._served if key[0] == name]:
            # A removed series lingers in multiprocess files: say that it is not served.
            self.model_info.labels(*labels).set(0)
            self.model_info.remove(*labels)
            self._served.discard(labels)
        labels = (name, version, digest)
        self.model_info.labels(*labels).set(1)
        self._served.add(labels)

    def add_sampler(self, sample: Callable[[], None]) -> None:
        """``sample()`` sets gauges from their sources; called before each scrape."""
        self._samplers.append(sample)

    def sample(self) -> None:
        for sample in self._samplers:
            sample()

    def render(self) -> bytes:
        """The Prometheus text of this app, or of every worker of the server."""
        self.sample()
        return generate_latest(self._exposed)

    async def sample_periodically(self) -> None:
        """In a worker: keep this worker's gauges fresh for scrapes other workers answer."""
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)
