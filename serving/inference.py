"""The protocol-free inference core: resolve a model → predict (micro-batched) → logged.

Both our REST routes and the Open Inference Protocol's call it, each after decoding and
validating its own payload against the model's FeatureSchema; each renders the outcome, and
the errors below, in its own protocol. The records of every answered request are spooled
to the prediction log before ``predict`` returns (serving/batching.py), whatever the
protocol.
"""

from __future__ import annotations

from serving.batching import MicroBatcher, RequestInfo
from serving.catalog import ModelCatalog
from serving.features import Inputs
from serving.metrics import Metrics
from serving.model import Prediction
from serving.predlog.records import LogFullError, LogUnavailableError


class ModelNotFoundError(LookupError):
    """No such model (or version) is served here: 404."""


class ModelNotReadyError(Exception):
    """The model exists but nothing of it is loaded (it failed to load): 503."""


class LogRefusedError(Exception):
    """The prediction log cannot take the records, so the answer must not be given: 503."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InferenceCore:
    """What every protocol's predict route calls."""

    def __init__(self, catalog: ModelCatalog, metrics: Metrics) -> None:
        self.catalog = catalog
        self.metrics = metrics

    def resolve(self, name: str | None, version: str | None = None) -> MicroBatcher:
        """The batcher serving ``name`` (the default model when None), at ``version`` when
        one is asked for. Take it once per request: its ``model`` is the request's model."""
        served = self.catalog.default if name is None else self.catalog.get(name)
        if served is None:
            raise ModelNotFoundError(self._unknown(name))
        batcher = served.batcher
        if batcher is None:
            self.metrics.refused.labels("no_model").inc()
            raise ModelNotReadyError(f"model {served.name!r} is not loaded: {served.error}")
        if version is not None and version != batcher.model.version:
            raise ModelNotFoundError(
                f"model {served.name!r} serves version {batcher.model.version}, not {version!r}"
            )
        return batcher

    async def predict(
        self, batcher: MicroBatcher, inputs: Inputs, request: RequestInfo
    ) -> Prediction:
        """The model's outputs, already spooled to the prediction log.

        Raises ModelInputError when the pipeline refuses these inputs, LogRefusedError when
        the log cannot take the records (then nothing is answered).
        """
        try:
            return await batcher.predict(inputs, request)
        except LogFullError as exc:
            self.metrics.refused.labels("log_full").inc()
            raise LogRefusedError(
                "the prediction log is full; try again later", exc.retry_after
            ) from None
        except LogUnavailableError:
            self.metrics.refused.labels("log_error").inc()
            # The cause (a disk error) is in the server log and /ready, not for clients.
            raise LogRefusedError(
                "the prediction log cannot record now; try again later", 5
            ) from None

    def _unknown(self, name: str | None) -> str:
        served = ", ".join(sorted(self.catalog.models)) or "none"
        if name is None:
            return (
                f"no default model: MODEL_NAME {self.catalog.default_name!r} is not served "
                f"(models served: {served}); use /models/{{name}}/predict or set MODEL_NAME"
            )
        return f"no model {name!r} is served here (models served: {served})"
