"""The prediction log: every answered instance reaches PostgreSQL (or SQLite) exactly once.

``open_log`` is the API's entry point; ``records`` holds the types it exchanges with the
log. Nothing here does I/O at import: the spool, pool and writer thread start in
``PredictionLog.start``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from serving.predlog.log import DisabledPredictionLog, DurablePredictionLog
from serving.predlog.records import PredictionLog
from serving.settings import Settings


def open_log(settings: Settings, registry: CollectorRegistry) -> PredictionLog:
    """The log ``settings`` ask for, with its metrics in ``registry``; call ``start()`` next."""
    if not settings.log_predictions:
        return DisabledPredictionLog()
    return DurablePredictionLog(settings, registry)
