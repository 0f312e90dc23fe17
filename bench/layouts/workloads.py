"""The two workloads of issue 13, as the server would hold them after a micro-batch.

W1 is breast_cancer: 30 float features (real rows of the data set), two classes. W2 is a
penguins-like typed model: island and sex (categories, sex sometimes null), four
measurements (numbers, some null) and year (an integer), three classes. Each request keeps
its rows as arrays: ``numbers`` holds the numeric features (NaN for null) in feature
order, ``texts`` one column per category feature; ``rows`` is the same data as typed row
lists, which is what a JSON encoder takes in one orjson call.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

BATCH_REQUESTS = 32
"""Requests per micro-batch (32 connections, one predict call for all of them)."""


@dataclass(frozen=True)
class Model:
    """One model version: what the log keeps once per version instead of once per row."""

    name: str
    version: str
    feature_names: tuple[str, ...]
    kinds: tuple[str, ...]
    """Per feature: 'number', 'integer' or 'category'."""
    classes: tuple[str, ...]

    @property
    def key(self) -> int:
        """A 64-bit key the server computes alone (no round trip to the database) and SQL
        computes alike (the migration): the first 8 bytes of sha256(name U+001F version)."""
        digest = hashlib.sha256(f"{self.name}\x1f{self.version}".encode()).digest()
        return int(struct.unpack(">q", digest[:8])[0])

    @property
    def numeric(self) -> tuple[int, ...]:
        """Positions of the numeric features (number or integer), in feature order."""
        return tuple(i for i, kind in enumerate(self.kinds) if kind != "category")

    @property
    def textual(self) -> tuple[int, ...]:
        return tuple(i for i, kind in enumerate(self.kinds) if kind == "category")


@dataclass(frozen=True)
class Request:
    """One answered request, as the log's ``append`` receives it."""

    request_id: uuid.UUID
    id_text: str
    """The id as the server holds it: it makes the UUIDv7 and keeps its text and bytes."""
    id_bytes: bytes
    created_at: float
    model: Model
    numbers: np.ndarray
    """(rows, numeric features) float64, NaN for null."""
    texts: list[list[str | None]]
    """One column per category feature, in feature order."""
    rows: list[list[Any]]
    """The same features as typed row lists in feature order (None for null)."""
    labels: np.ndarray
    """(rows,) int16: the predicted class's position in ``model.classes``."""
    predictions: list[str]
    probabilities: np.ndarray
    """(rows, classes) float64."""
    latency_ms: float
    client_id: str | None
    client_request_id: str | None

    @property
    def size(self) -> int:
        return len(self.labels)


BREAST_CANCER = load_breast_cancer()
W1 = Model(
    "breast_cancer",
    "20261128-000000-000000",
    tuple(str(name) for name in BREAST_CANCER.feature_names),
    ("number",) * 30,
    ("malignant", "benign"),
)
W2 = Model(
    "penguins",
    "20261128-000000-000001",
    (
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
        "sex", "year",
    ),
    ("category", "number", "number", "number", "number", "category", "integer"),
    ("Adelie", "Chinstrap", "Gentoo"),
)  # fmt: skip
MODELS = {"W1": W1, "W2": W2}


def uuid7(unix: float) -> uuid.UUID:
    """A UUIDv7 (time-ordered), as the server makes request ids."""
    ms = int(unix * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    return uuid.UUID(int=value)


def _w1_features(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, list[list[Any]]]:
    data = np.asarray(BREAST_CANCER.data, dtype=np.float64)
    matrix = data[rng.integers(0, len(data), size=rows)]
    return matrix, []


def _w2_features(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, list[list[str | None]]]:
    numbers = np.column_stack(
        [
            np.round(rng.normal(44.0, 5.5, rows), 1),
            np.round(rng.normal(17.2, 2.0, rows), 1),
            np.round(rng.normal(201.0, 14.0, rows)),
            np.round(rng.normal(4200.0, 800.0, rows), -1),
            rng.integers(2007, 2010, rows).astype(np.float64),
        ]
    )
    numbers[:, :4][rng.random((rows, 4)) < 0.03] = np.nan
    islands = ["Biscoe", "Dream", "Torgersen"]
    sexes: list[str | None] = ["female", "male", None]
    island = [islands[i] for i in rng.integers(0, 3, rows)]
    sex = [sexes[i] for i in rng.choice(3, rows, p=[0.48, 0.48, 0.04])]
    return numbers, [list(island), sex]


def _typed_rows(
    model: Model, numbers: np.ndarray, texts: list[list[str | None]]
) -> list[list[Any]]:
    rows: list[list[Any]] = [[None] * len(model.kinds) for _ in range(len(numbers))]
    columns = numbers.T.tolist()
    for j, position in enumerate(model.numeric):
        integer = model.kinds[position] == "integer"
        for row, value in zip(rows, columns[j], strict=True):
            if value == value:  # not NaN
                row[position] = int(value) if integer else value
    for j, position in enumerate(model.textual):
        for row, text in zip(rows, texts[j], strict=True):
            row[position] = text
    return rows


def requests(
    model: Model,
    count: int,
    rows: int,
    *,
    start: float | None = None,
    spacing: float = 0.001,
    seed: int = 0,
    client_ids: bool = True,
) -> list[Request]:
    """``count`` requests of ``rows`` rows; one in four carries a client X-Request-ID."""
    rng = np.random.default_rng(seed)
    start = time.time() if start is None else start
    total = count * rows
    if model is W1:
        numbers, texts = _w1_features(rng, total)
    else:
        numbers, texts = _w2_features(rng, total)
    raw = rng.random((total, len(model.classes))) + 0.05
    probabilities = raw / raw.sum(axis=1, keepdims=True)
    labels = probabilities.argmax(axis=1).astype(np.int16)
    typed = _typed_rows(model, numbers, texts) if model.textual else []
    out = []
    for k in range(count):
        lo, hi = k * rows, (k + 1) * rows
        created = start + k * spacing
        request_id = uuid7(created)
        out.append(
            Request(
                request_id=request_id,
                id_text=str(request_id),
                id_bytes=request_id.bytes,
                created_at=created,
                model=model,
                numbers=numbers[lo:hi],
                texts=[column[lo:hi] for column in texts],
                rows=typed[lo:hi],
                labels=labels[lo:hi],
                predictions=[model.classes[i] for i in labels[lo:hi]],
                probabilities=probabilities[lo:hi],
                latency_ms=float(np.round(rng.gamma(4.0, 2.0), 3)),
                client_id=None,
                client_request_id=str(uuid.uuid4()) if client_ids and k % 4 == 0 else None,
            )
        )
    return out


def micro_batches(requests_: list[Request], size: int = BATCH_REQUESTS) -> Iterator[list[Request]]:
    for k in range(0, len(requests_), size):
        yield requests_[k : k + size]


def chunks_of_rows(requests_: list[Request], rows: int) -> Iterator[list[Request]]:
    """Consecutive requests holding ``rows`` rows together (the writer's batch)."""
    batch: list[Request] = []
    held = 0
    for request in requests_:
        batch.append(request)
        held += request.size
        if held >= rows:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
