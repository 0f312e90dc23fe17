"""What the app holds while it runs: settings, metrics, the log, the served models.

Shared by every request of one app and mutated only on the event loop; components talk
through their methods (the catalog loads and swaps models, the log accepts records).
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.catalog import ModelCatalog
from serving.inference import InferenceCore
from serving.metrics import Metrics
from serving.monitoring.gauges import Refresher
from serving.predlog.records import PredictionLog
from serving.settings import Settings


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    log: PredictionLog
    catalog: ModelCatalog
    core: InferenceCore
    refresher: Refresher | None = None
    """Refreshes the monitoring gauges (serving/monitoring/gauges.py)."""
    draining: bool = False
    drain_started: float | None = None
    """time.monotonic() of the shutdown signal; the log's flush gets what is left."""
