"""Prometheus metrics of the HTTP service, in a registry owned by the app.

Each app has its own ``CollectorRegistry`` so that several apps (tests) can live in one
process; the prediction log registers its own families in the same registry.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from serving.model import Prediction

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """Every metric family of the HTTP side."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
            "The models being served (value 1), by name, version and artifact digest.",
            ["name", "version", "digest"],
            registry=r,
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
            self.model_info.remove(*labels)
            self._served.discard(labels)
        labels = (name, version, digest)
        self.model_info.labels(*labels).set(1)
        self._served.add(labels)
