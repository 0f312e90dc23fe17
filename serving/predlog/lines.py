"""The spool's line format, written by ``Spool.append`` and read back by ``SpoolReader``.

A segment is JSON lines: a header, then per model version a schema line
``{"schema":0,"name":…,"version":…,"features":[…],"classes":[…]}``, then one line per
request ``{"s":0,"r":<request id>,"t":<unix time>,"y":[…],"l":<ms>,"c":<client>,
"p":[[…]],"x":[[…]]}``. Arrays come last so the writer can take their text as is:
keying 30 numbers per row by name is then a splice, where parsing and re-printing them
would cost the writer most of its time.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from serving.predlog.records import ModelSchema, PredictionRecord

HEADER = b'{"skship_spool":1}\n'
HEADER_LINE = HEADER.rstrip(b"\n")
RECORD_START = b'\n{"s":'
"""Every record line starts so (after the newline ending the line before it)."""
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_FEATURES_KEY = b',"x":'
_PROBABILITIES_KEY = b',"p":'


def schema_line(sid: int, schema: ModelSchema) -> bytes:
    return (
        orjson.dumps(
            {
                "schema": sid,
                "name": schema.name,
                "version": schema.version,
                "features": schema.feature_names,
                "classes": schema.classes,
            }
        )
        + b"\n"
    )


def record_line(sid: int, record: PredictionRecord) -> bytes:
    return (
        orjson.dumps(
            {
                "s": sid,
                "r": record.request_id,
                "t": record.created_at,
                "y": record.predictions,
                "l": record.latency_ms,
                "c": record.client_id,
                # Arrays last, so the writer can take their text as is (decode).
                "p": record.probabilities,
                "x": record.features,
            },
            default=_default,
            option=_OPTIONS,
        )
        + b"\n"
    )


def _default(value: object) -> object:
    """Values orjson does not know natively: numpy scalars, tuples of labels and the like."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | range):
        return list(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


@dataclass(frozen=True, slots=True, eq=False)
class SpooledModel:
    """A model schema with its JSON objects pre-built: ``{"name":%s,...}`` per row kind."""

    schema: ModelSchema
    features_template: bytes
    classes_template: bytes | None

    @classmethod
    def of(cls, schema: ModelSchema) -> SpooledModel:
        def template(names: tuple[str, ...]) -> bytes:
            keys = (orjson.dumps(name).replace(b"%", b"%%") + b":%s" for name in names)
            return b"{" + b",".join(keys) + b"}"

        classes = None if schema.classes is None else template(schema.classes)
        return cls(schema, template(schema.feature_names), classes)


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """One request as read back from the spool, ready to become rows.

    Features and probabilities stay the JSON text the appender wrote: per row, one
    ``bytes`` of comma-separated numbers.
    """

    model: SpooledModel
    request_id: str
    created_at: float
    predictions: list[str | float]
    latency_ms: float
    client_id: str | None
    features: list[bytes]
    probabilities: list[bytes] | None

    def features_json(self, row: int) -> bytes:
        """Row ``row``'s features as a JSON object keyed by feature name."""
        return _object(self.model.features_template, self.features[row], self.request_id)

    def probabilities_json(self, row: int) -> bytes | None:
        """Row ``row``'s probabilities keyed by class; None for regressors."""
        if self.probabilities is None or self.model.classes_template is None:
            return None
        return _object(self.model.classes_template, self.probabilities[row], self.request_id)


def _object(template: bytes, numbers: bytes, request_id: str) -> bytes:
    try:
        return template % tuple(numbers.split(b","))
    except TypeError:  # too many or too few numbers for the names
        raise ValueError(f"request {request_id}: a row does not match its model's names") from None


def decode(line: bytes, models: dict[int, SpooledModel]) -> SpooledRecord | None:
    """A record line as a SpooledRecord; a schema line is added to ``models`` (None).

    Raises ValueError, KeyError, TypeError or orjson.JSONDecodeError for a line that is not
    one of ours.
    """
    # A record line ends with ',"p":<array or null>,"x":<array>}'. Neither key can occur
    # earlier: inside a JSON string a '"' is always escaped.
    p_at = line.find(_PROBABILITIES_KEY)
    if p_at < 0:
        item = orjson.loads(line)
        models[item["schema"]] = SpooledModel.of(
            ModelSchema(
                item["name"],
                item["version"],
                tuple(item["features"]),
                None if item["classes"] is None else tuple(item["classes"]),
            )
        )
        return None
    x_at = line.index(_FEATURES_KEY, p_at)
    item = orjson.loads(line[:p_at] + b"}")
    features = _rows_of(line, x_at + len(_FEATURES_KEY), len(line) - 1)
    p_start = p_at + len(_PROBABILITIES_KEY)
    probabilities = None if x_at - p_start == 4 else _rows_of(line, p_start, x_at)
    predictions = item["y"]
    if len(predictions) != len(features) or (
        probabilities is not None and len(probabilities) != len(features)
    ):
        raise ValueError("rows, predictions and probabilities differ in length")
    return SpooledRecord(
        models[item["s"]],
        item["r"],
        item["t"],
        predictions,
        item["l"],
        item["c"],
        features,
        probabilities,
    )


def _rows_of(line: bytes, start: int, end: int) -> list[bytes]:
    """``[[1.0,2.0],[3.0,4.0]]`` in ``line[start:end]`` -> ``[b"1.0,2.0", b"3.0,4.0"]``.

    Numbers hold no brackets, so splitting on ``],[`` is exact.
    """
    if end - start == 2 and line.startswith(b"[]", start):
        return []
    if not (line.startswith(b"[[", start) and line.endswith(b"]]", start, end)):
        raise ValueError("not a 2-d array of numbers")
    return line[start + 2 : end - 2].split(b"],[")
