"""Spool segments an older version left (formats 2 and 3: one COPY text row per instance),
converted to today's frames when a server opens the spool, so they replay like its own.

A request's rows are contiguous in such a segment and carry their features and
probabilities as JSON objects by name: the conversion rebuilds each request's record
(features in the order their names first appear, classes in the order of the probabilities'
keys) and encodes it as the appender would. A torn last line (the process was killed
mid-write, before that response) and lines that are not rows are counted, not converted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from serving.predlog import frames, lines
from serving.predlog.records import ModelSchema, PredictionRecord

logger = logging.getLogger(__name__)


@dataclass
class Converted:
    data: bytes
    """The segment in today's format: header and frames."""
    lost: dict[str, int] = field(default_factory=dict)


def convert(data: bytes) -> Converted:
    """An older segment's bytes (format 2 or 3) as today's segment."""
    lost: dict[str, int] = {}
    upgraded = lines.upgrade(data)
    if upgraded is not None:
        data = upgraded
    if not data.startswith(lines.HEADER):
        lost["corrupt"] = data.count(b"\n") or 1
        logger.error(
            "an old spool segment without a known header: %d line(s) dropped", lost["corrupt"]
        )
        return Converted(frames.SEGMENT_HEADER, lost)
    body = data[len(lines.HEADER) :]
    complete, _, torn = body.rpartition(b"\n")
    if torn:
        lost["torn"] = 1
        logger.warning("skipping a torn last line in an old spool segment")
    parsed: list[list[str | None]] = []
    for line in complete.split(b"\n") if complete else []:
        try:
            parsed.append(lines.parse(line))
        except ValueError:
            lost["corrupt"] = lost.get("corrupt", 0) + 1
            logger.error("dropping a line that is not a prediction row in an old spool segment")
    records = to_records(parsed, lost)
    out = [frames.SEGMENT_HEADER]
    encoders: dict[ModelSchema, frames.RequestEncoder] = {}
    for record in records:
        encoder = encoders.get(record.model)
        if encoder is None:
            encoder = encoders[record.model] = frames.RequestEncoder(record.model)
            out.append(encoder.model_frame)
        payload = encoder.encode([record])
        out.append(frames.frame(frames.REQUESTS_MAGIC, payload, len(record.predictions)))
    return Converted(b"".join(out), lost)


def to_records(rows: list[list[str | None]], lost: dict[str, int]) -> list[PredictionRecord]:
    """Contiguous rows of one request id (COPY text fields, ``lines.parse``) make one record;
    rows that do not convert are counted in ``lost``."""
    groups: list[list[list[str | None]]] = []
    for row in rows:
        if groups and groups[-1][0][0] == row[0]:
            groups[-1].append(row)
        else:
            groups.append([row])
    schemas = _schemas(groups)
    records = []
    for group in groups:
        try:
            records.append(_record(group, schemas))
        except (ValueError, KeyError, TypeError) as exc:
            lost["corrupt"] = lost.get("corrupt", 0) + len(group)
            logger.error("dropping %d old spooled row(s) that do not convert: %s", len(group), exc)
    return records


def _schemas(groups: list[list[list[str | None]]]) -> dict[tuple[str, str], ModelSchema]:
    """Each version's names, classes and kinds, from all its rows in the segment."""
    seen: dict[tuple[str, str], tuple[list[str], list[str] | None, set[str], set[str], bool]] = {}
    for group in groups:
        for row in group:
            key = (str(row[3]), str(row[4]))
            features = orjson.loads(str(row[5]))
            found = seen.get(key)
            if found is None:
                classes = None if row[7] is None else list(orjson.loads(row[7]))
                found = seen[key] = (list(features), classes, set(), set(), False)
            names, classes, categories, booleans, _ = found
            for name, value in features.items():
                if name not in names:  # rows of one version may omit a key (null)
                    names.append(name)
                if isinstance(value, bool):
                    booleans.add(name)
                elif isinstance(value, str):
                    categories.add(name)
            if classes is None and not _is_number(str(row[6])):
                seen[key] = (names, classes, categories, booleans, True)
    schemas = {}
    for (name, version), (names, known, categories, booleans, labelled) in seen.items():
        classes = known
        if known is None and labelled:  # a classifier logged without probabilities
            classes = sorted(
                {str(r[6]) for g in groups for r in g if (r[3], r[4]) == (name, version)}
            )
        kinds = tuple(
            "boolean" if n in booleans else "category" if n in categories else "number"
            for n in names
        )
        typed = kinds if any(kind != "number" for kind in kinds) else None
        schemas[name, version] = ModelSchema(
            name, version, tuple(names), None if classes is None else tuple(classes), typed
        )
    return schemas


def _record(
    group: list[list[str | None]], schemas: dict[tuple[str, str], ModelSchema]
) -> PredictionRecord:
    first = group[0]
    schema = schemas[str(first[3]), str(first[4])]
    objects = [orjson.loads(str(row[5])) for row in group]
    rows: list[list[Any]] = [[obj.get(n) for n in schema.feature_names] for obj in objects]
    features: np.ndarray | list[list[Any]] = rows
    if schema.feature_kinds is None:
        features = np.array(rows, dtype=np.float64)
    probabilities = None
    if first[7] is not None and schema.classes is not None:
        classes = schema.classes
        probabilities = np.array(
            [[orjson.loads(str(row[7]))[c] for c in classes] for row in group], dtype=np.float64
        )
    predictions: list[str] | list[float]
    if schema.classes is None:
        predictions = [float(str(row[6])) for row in group]
    else:
        predictions = [str(row[6]) for row in group]
    created = datetime.strptime(str(first[2]), lines.TIME_FORMAT).replace(tzinfo=UTC)
    return PredictionRecord(
        request_id=str(first[0]),
        created_at=created.timestamp(),
        model=schema,
        features=features,
        predictions=predictions,
        probabilities=probabilities,
        latency_ms=float(str(first[8])),
        client_id=first[9],
        client_request_id=first[10],
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
