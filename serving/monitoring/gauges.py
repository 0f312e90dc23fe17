"""Drift verdicts and live quality as Prometheus gauges, refreshed on a schedule.

A background task asks the same questions as GET /monitoring/drift and /monitoring/quality,
for every served model over the last MONITORING_WINDOW_SECONDS, every
MONITORING_INTERVAL_SECONDS, on the log's bounded query threads: the predict path pays
nothing, and a dashboard can alert on ``skship_drift_detected == 1`` or on a live metric
falling below the held-out one. A refresh that fails is logged once per distinct problem
and the gauges keep their last values (``skship_monitoring_refreshed_timestamp_seconds``
tells how old they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Gauge

from serving.artifact import Metadata
from serving.catalog import ModelCatalog
from serving.monitoring.drift import DriftReport, drift
from serving.monitoring.quality import QualityReport, quality
from serving.monitoring.queries import Window, connected_source
from serving.monitoring.registry import Registry
from serving.predlog.reading import Connector
from serving.predlog.records import PredictionLog
from serving.predlog.threads import ProblemLog

logger = logging.getLogger(__name__)


class MonitoringGauges:
    """The gauge families, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.detected = Gauge(
            "skship_drift_detected",
            "1 when the column (a feature, or 'prediction') drifted in the last window, 0 when "
            "not; absent without a verdict (too few rows, no reference profile).",
            ["model", "column"],
            registry=registry,
        )
        self.value = Gauge(
            "skship_drift_statistic",
            "The drift statistic of the column (p-value or Jensen-Shannon distance, see "
            "docs/monitoring.md).",
            ["model", "column"],
            registry=registry,
        )
        self.rows = Gauge(
            "skship_drift_rows", "Live rows the last drift verdict rests on.", ["model"],
            registry=registry,
        )  # fmt: skip
        self.quality = Gauge(
            "skship_live_quality",
            "Live metric of labelled predictions in the last window, by model version.",
            ["model", "version", "metric"],
            registry=registry,
        )
        self.labelled = Gauge(
            "skship_live_labelled",
            "Labelled predictions in the last window, by model version.",
            ["model", "version"],
            registry=registry,
        )
        self.refreshed = Gauge(
            "skship_monitoring_refreshed_timestamp_seconds",
            "When the monitoring gauges of the model were last refreshed (Unix time).",
            ["model"],
            registry=registry,
        )

    def set_drift(self, model: str, report: DriftReport) -> None:
        self.rows.labels(model).set(report.rows)
        columns = [*report.features, *([report.prediction] if report.prediction else [])]
        for column in columns:
            name = "prediction" if column is report.prediction else column.name
            if column.drifted is None:
                _remove(self.detected, model, name)
                _remove(self.value, model, name)
                continue
            self.detected.labels(model, name).set(1.0 if column.drifted else 0.0)
            if column.value is not None:
                self.value.labels(model, name).set(column.value)

    def set_quality(self, model: str, report: QualityReport) -> None:
        for version in report.versions:
            self.labelled.labels(model, version.version).set(version.labelled)
            for metric, value in version.live.items():
                if value is not None:
                    self.quality.labels(model, version.version, metric).set(value)


@dataclass(frozen=True)
class Refresher:
    """Refreshes ``gauges`` for every served model of ``catalog``."""

    catalog: ModelCatalog
    log: PredictionLog
    gauges: MonitoringGauges
    registry: Registry
    window: float
    min_rows: int

    async def forever(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        problems = ProblemLog(logger)
        while True:
            await asyncio.sleep(interval)
            for name, served in list(self.catalog.models.items()):
                model = served.model
                if model is None:
                    continue
                try:
                    await self.refresh(name, model.metadata)
                except Exception as exc:  # a refresh must never end the task
                    problems.report(f"monitoring gauges of {name}: {type(exc).__name__}: {exc}")

    async def refresh(self, name: str, metadata: Metadata) -> None:
        """One model's gauges, over the last ``window`` seconds."""
        scope = Window(since=datetime.now(UTC) - timedelta(seconds=self.window))

        def ask_drift(connector: Connector) -> DriftReport:
            return drift(connected_source(connector), metadata, scope, min_rows=self.min_rows)

        def ask_quality(connector: Connector) -> QualityReport:
            return quality(connected_source(connector), self.registry, name, scope)

        self.gauges.set_drift(name, await self.log.read_connected(ask_drift))
        self.gauges.set_quality(name, await self.log.read_connected(ask_quality))
        self.gauges.refreshed.labels(name).set(time.time())


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        gauge.remove(*labels)
