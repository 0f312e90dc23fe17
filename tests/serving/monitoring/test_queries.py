"""Live counts computed by each store's SQL equal the same counts computed in numpy."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from serving.monitoring.queries import Scope, Window
from tests.serving.monitoring.helpers import Logged, at, insert_predictions, source

EDGES = [0.0, 1.0, 2.5, 4.0, 10.0]
T0 = at(1_790_000_000)
INJECTION = "x'; DROP TABLE predictions; --"


def numpy_bin(value: float) -> int:
    """The profile's binning (serving/artifact/metadata.py): outside the range -> end bins."""
    return int(np.clip(np.searchsorted(EDGES, value, side="right"), 1, len(EDGES) - 1) - 1)


VALUES: list[object] = [
    -5,
    0,
    0.0,
    0.999,
    1,
    1.0,
    2.4999,
    2.5,
    3,
    4,
    9.99,
    10,
    10.0,
    11,
    1e9,
    -1e-9,
    None,
    "3",
    True,
]
COLOURS: list[object] = ["red", "blue", "red", None, "green", "red", '"quoted"', True, 7, None]


def _rows(model: str = "m", version: str = "v1", start: int = 0) -> list[Logged]:
    rows = []
    for i, value in enumerate(VALUES):
        features: dict[str, object] = {"x": value, "colour": COLOURS[i % len(COLOURS)], "y": 1}
        if i == 3:
            del features["x"]  # an absent key counts as missing, like null
        rows.append(
            Logged(model, version, features, ["a", "b", "c"][i % 3], T0 + timedelta(minutes=i))
        )
    return rows[start:]


def test_feature_cells_count_like_the_profiles_binning(store_url: str) -> None:
    insert_predictions(store_url, _rows())
    cells = source(store_url).feature_cells(Scope("m", "v1"), {"x": EDGES, "colour": None})
    numbers = [v for i, v in enumerate(VALUES) if i != 3 and _is_number(v)]
    assert cells["x"] == dict(Counter(str(numpy_bin(float(v))) for v in numbers))  # type: ignore[arg-type]
    colours = [COLOURS[i % len(COLOURS)] for i in range(len(VALUES))]
    expected = Counter("true" if c is True else str(c) for c in colours if c is not None)
    assert cells["colour"] == dict(expected)
    assert "y" not in cells


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_feature_cells_honour_model_version_and_window(store_url: str) -> None:
    insert_predictions(store_url, _rows() + _rows(version="v2") + _rows(model="other"))
    found = source(store_url)
    spec = {"x": EDGES}
    present = [i for i, v in enumerate(VALUES) if i != 3 and _is_number(v)]
    assert sum(found.feature_cells(Scope("m", "v2"), spec)["x"].values()) == len(present)
    assert sum(found.feature_cells(Scope("m", None), spec)["x"].values()) == 2 * len(present)
    window = Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))
    inside = [i for i in present if 5 <= i < 10]
    assert sum(found.feature_cells(Scope("m", "v1", window), spec)["x"].values()) == len(inside)


def test_an_injection_shaped_name_is_only_data(store_url: str) -> None:
    insert_predictions(store_url, [Logged(INJECTION, INJECTION, {INJECTION: 1.5}, "a", T0)])
    cells = source(store_url).feature_cells(Scope(INJECTION, INJECTION), {INJECTION: EDGES})
    assert cells == {INJECTION: {"1": 1}}


def test_prediction_cells_count_classes(store_url: str) -> None:
    insert_predictions(store_url, _rows())
    assert source(store_url).prediction_cells(Scope("m", "v1"), None) == {"a": 7, "b": 6, "c": 6}


def test_prediction_cells_bin_a_regressors_values(store_url: str) -> None:
    values = [-1.0, 0.5, 2.5, 3.999, 4.0, 10.0, 12.5]
    insert_predictions(
        store_url,
        [Logged("r", "v", {}, repr(v), T0 + timedelta(seconds=i)) for i, v in enumerate(values)],
    )
    cells = source(store_url).prediction_cells(Scope("r", "v"), EDGES)
    assert cells == dict(Counter(str(numpy_bin(v)) for v in values))


def test_counts_per_version_and_bucket(store_url: str) -> None:
    insert_predictions(store_url, _rows() + _rows(version="v2", start=10))
    found = source(store_url)
    totals = {r["model_version"]: r["predictions"] for r in found.counts(Scope("m"))}
    assert totals == {"v1": 19, "v2": 9}
    buckets = found.counts(Scope("m", "v1"), bucket_seconds=600)
    expected = Counter(int((T0 + timedelta(minutes=i)).timestamp()) // 600 for i in range(19))
    assert {r["bucket"]: r["predictions"] for r in buckets} == dict(expected)
    first = found.counts(Scope("m", "v1"))[0]["first_at"]
    assert first == T0


@pytest.mark.parametrize("seconds", [60, 3600])
def test_class_series_buckets_by_time(store_url: str, seconds: int) -> None:
    insert_predictions(store_url, _rows())
    rows = source(store_url).class_series(Scope("m"), seconds)
    assert sum(r["n"] for r in rows) == len(VALUES)
    expected = Counter(
        (int((T0 + timedelta(minutes=i)).timestamp()) // seconds, ["a", "b", "c"][i % 3])
        for i in range(len(VALUES))
    )
    assert {(r["bucket"], r["cell"]): r["n"] for r in rows} == dict(expected)
