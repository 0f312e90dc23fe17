"""Which encoder writes which layout, and the encoding-cost measurement."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.layouts import binary, text
from bench.layouts.workloads import Model, Request, micro_batches, requests
from serving.predlog.lines import RowEncoder, TimeText
from serving.predlog.records import ModelSchema, PredictionRecord


class Encoder(Protocol):
    columns: str

    def encode(self, requests: Sequence[Request]) -> bytes: ...


def encoder_for(layout: str, model: Model) -> Encoder:
    if layout == "A":
        return text.LayoutA(model)
    if layout == "B-text":
        return text.Columnar(model, arrays=True)
    if layout == "C":
        return text.Columnar(model, arrays=False)
    if layout in ("B", "B-req"):
        return binary.RowsBinary(model, wide=False)
    if layout == "E":
        return binary.RowsBinary(model, wide=True)
    if layout in ("D", "D-pglz", "D-lz4"):
        return binary.RequestsBinary(model)
    raise ValueError(f"unknown layout {layout}")


class TodayEncoder:
    """serving.predlog.lines.RowEncoder as Spool.append calls it (numeric models only)."""

    columns = (
        "request_id, row_index, created_at, model_name, model_version, features, prediction,"
        " probabilities, latency_ms, client_id"
    )

    def __init__(self, model: Model) -> None:
        self.schema = ModelSchema(model.name, model.version, model.feature_names, model.classes)
        self._encoder = RowEncoder(self.schema)
        self._time = TimeText()

    def records(self, requests_: Sequence[Request]) -> list[PredictionRecord]:
        return [
            PredictionRecord(
                r.id_text, r.created_at, self.schema, r.numbers, r.predictions,
                r.probabilities, r.latency_ms, r.client_id,
            )
            for r in requests_
        ]  # fmt: skip

    def encode_records(self, records: Sequence[PredictionRecord]) -> bytes:
        return b"".join(self._encoder.encode(record, self._time) for record in records)


@dataclass(frozen=True)
class EncodeResult:
    layout: str
    workload: str
    rows_per_request: int
    us_per_row: float
    frame_us_per_row: float
    """CRC-32 and header of the binary frame (0 for text lines, which need none)."""
    bytes_per_row: float


def measure_encoding(
    layout: str, model: Model, workload: str, rows_per_request: int, repeats: int = 5
) -> EncodeResult:
    """CPU per row to encode 32 micro-batches of 32 requests, median of ``repeats``."""
    batches = list(micro_batches(requests(model, 32 * 32, rows_per_request, seed=7)))
    rows = sum(r.size for batch in batches for r in batch)
    timings, framing = [], []
    size = 0
    if layout == "A-today":
        today = TodayEncoder(model)
        record_batches = [today.records(batch) for batch in batches]
        for _ in range(repeats):
            started = time.thread_time_ns()
            size = sum(len(today.encode_records(b)) for b in record_batches)
            timings.append(time.thread_time_ns() - started)
        framing = [0]
    else:
        encoder = encoder_for(layout, model)
        binary_layout = layout in ("B", "B-req", "D", "E")
        for _ in range(repeats):
            started = time.thread_time_ns()
            payloads = [encoder.encode(b) for b in batches]
            timings.append(time.thread_time_ns() - started)
            size = sum(len(p) for p in payloads)
            started = time.thread_time_ns()
            if binary_layout:
                for p in payloads:
                    binary.frame(p, 0)
            framing.append(time.thread_time_ns() - started)
    return EncodeResult(
        layout,
        workload,
        rows_per_request,
        statistics.median(timings) / rows / 1000,
        statistics.median(framing) / rows / 1000,
        size / rows,
    )
