"""Exported rows, rendered the same way whichever store they come from.

Both stores hand over rows as the SQLite store holds them (``sql.COLUMN_NAMES`` order: text
UUID, ``created_at`` as ISO 8601 UTC text with microseconds and ``Z``, features and
probabilities as JSON text), and this module prints them; so an export of the same rows is
byte for byte the same from PostgreSQL and from SQLite.

- JSON lines: one compact object per row (orjson's spacing), keys in column order,
  ``features`` and ``probabilities`` as objects.
- CSV: one column per feature (``feature.<name>``) and per class probability
  (``proba.<class>``) instead of JSON blobs. The columns are the union over the model
  versions in the export, in the order of each version's features, versions by first
  appearance; a row's cell of a column its version lacks is empty, as is a null. Numbers
  print as in JSON, booleans as ``true``/``false``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import IO, Any, Literal

import orjson

from serving.predlog import sql

Format = Literal["csv", "jsonl"]
FEATURE_PREFIX = "feature."
PROBA_PREFIX = "proba."
_FLUSH_ROWS = 1000


class ExportError(Exception):
    """The rows cannot be printed as asked (a row with a feature its version's first lacks)."""


def write(
    fmt: Format,
    shapes: Sequence[tuple[str | None, str | None]],
    rows: Iterable[Sequence[Any]],
    out: IO[bytes],
) -> None:
    """Print ``rows`` oldest first to ``out``; ``shapes`` (CSV only) holds, per version, the
    features and probabilities JSON of its first row, in the order the columns should take."""
    if fmt == "jsonl":
        _write_jsonl(rows, out)
    else:
        _write_csv(shapes, rows, out)
    out.flush()


def _write_jsonl(rows: Iterable[Sequence[Any]], out: IO[bytes]) -> None:
    lines = []
    for row in rows:
        item = dict(zip(sql.COLUMN_NAMES, row, strict=True))
        # Parsed and printed again, so spacing never depends on how a store returned JSON.
        item["features"] = orjson.loads(item["features"])
        if item["probabilities"] is not None:
            item["probabilities"] = orjson.loads(item["probabilities"])
        lines.append(orjson.dumps(item))
        if len(lines) >= _FLUSH_ROWS:
            out.write(b"\n".join(lines) + b"\n")
            lines.clear()
    if lines:
        out.write(b"\n".join(lines) + b"\n")


def _union(objects: Iterable[str | None]) -> list[str]:
    keys: dict[str, None] = {}
    for text in objects:
        if text is not None:
            keys.update(dict.fromkeys(orjson.loads(text)))
    return list(keys)


def header(shapes: Sequence[tuple[str | None, str | None]]) -> tuple[list[str], list[str]]:
    """Feature names and class names, each the union in first-seen order."""
    return _union(f for f, _ in shapes), _union(p for _, p in shapes)


def _write_csv(
    shapes: Sequence[tuple[str | None, str | None]], rows: Iterable[Sequence[Any]], out: IO[bytes]
) -> None:
    features, classes = header(shapes)
    known_features, known_classes = set(features), set(classes)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        [
            *sql.COLUMN_NAMES[:5],
            *(FEATURE_PREFIX + name for name in features),
            "prediction",
            *(PROBA_PREFIX + name for name in classes),
            *sql.COLUMN_NAMES[8:],
        ]
    )
    for row in rows:
        rid, index, created, name, version, feats, prediction, probs, latency, client, cid = row
        values: dict[str, Any] = orjson.loads(feats)
        probabilities: dict[str, Any] = {} if probs is None else orjson.loads(probs)
        if not values.keys() <= known_features or not probabilities.keys() <= known_classes:
            raise ExportError(
                f"row {rid}/{index} of {name} {version} has names the version's first row"
                " lacks; export it as JSON lines (--format jsonl)"
            )
        cells = [
            rid, index, created, name, version,
            *(_cell(values.get(f)) for f in features),
            prediction,
            *(_cell(probabilities.get(c)) for c in classes),
            _cell(latency), _cell(client), _cell(cid),
        ]  # fmt: skip
        writer.writerow(cells)
    text.flush()
    text.detach()


def _cell(value: object) -> str:
    """A CSV cell: empty for null (or absent), JSON's spelling for numbers and booleans."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
