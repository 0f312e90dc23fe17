"""The prediction log (being built on the `predlog` branch; only the disabled log here)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from serving.predlog.records import LogStatus, PredictionLog, PredictionRecord
from serving.settings import Settings


class DisabledLog:
    """LOG_PREDICTIONS=false: accepts and drops everything (benchmark comparison only)."""

    def start(self) -> None:
        pass

    def append(self, records: Sequence[PredictionRecord]) -> None:
        pass

    def status(self) -> LogStatus:
        return LogStatus(True, None, "disabled", True, 0, None)

    def close(self, timeout: float) -> None:
        pass


def open_log(settings: Settings, registry: CollectorRegistry) -> PredictionLog:
    return DisabledLog()
