"""The HTML report: self-contained, aggregates only, drifted features first, drawn by Chromium.

The browser test needs ``/usr/bin/chromium`` (``apt-get install -y chromium``); without it
the test is skipped loudly, and with ``REQUIRE_BROWSER=1`` (CI) it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving.monitoring import report, svg
from serving.monitoring.drift import ColumnDrift, DriftReport, Histogram
from serving.monitoring.quality import QualityReport
from serving.monitoring.queries import Window
from serving.monitoring.registry import Registry
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.sqlite import SqliteStore
from tests.serving.monitoring.conftest import Zoo
from tests.serving.monitoring.helpers import (
    Logged,
    at,
    insert_predictions,
    save_version,
    source,
)

T0 = 1_790_000_000
ROWS = 600
SHIFTED = ["mean radius", "worst texture"]
MARKER = 123456.789012
"""A live value that must not reach the report (it holds aggregates, never rows)."""


def log_traffic(zoo: Zoo, url: str, start: float = T0) -> list[str]:
    """Both versions answer 600 rows each, 30 s apart; the current one's later half has two
    features shifted by a training std; a third of the rows get labels. Returns request ids."""
    rng = np.random.default_rng(7)
    names = zoo.dataset.feature_names
    rows, labels, ids = [], [], []
    for k, (metadata, trained) in enumerate(zoo.versions):
        X = trained.X_train[rng.integers(0, len(trained.X_train), ROWS)].copy()
        if k == len(zoo.versions) - 1:
            for name in SHIFTED:
                X[ROWS // 2 :, names.index(name)] += next(
                    f.std or 0.0 for f in metadata.features if f.name == name
                )
        predicted = trained.pipeline.predict(X)
        proba = trained.pipeline.predict_proba(X)
        classes = [str(c) for c in trained.pipeline.classes_]
        for i in range(ROWS):
            rid = str(uuid.uuid4())
            ids.append(rid)
            features = dict(zip(names, map(float, X[i]), strict=True))
            if i == 0:
                features["mean radius"] = MARKER
            moment = at(start + k * 6 * 3600 + i * 30)
            probabilities = dict(zip(classes, map(float, proba[i]), strict=True))
            rows.append(
                Logged(metadata.name, metadata.version, features, str(predicted[i]), moment,
                       probabilities, rid)
            )  # fmt: skip
            if i % 3 == 0:
                labels.append(FeedbackRecord(rid, 0, str(predicted[i]), start + i))
    insert_predictions(url, rows)
    store = PostgresStore(url) if is_postgres(url) else SqliteStore(url)
    store.open()
    try:
        store.write_feedback(labels)
    finally:
        store.close()
    return ids


@pytest.fixture
def built(classifiers: Zoo, store_url: str) -> tuple[str, list[str]]:
    ids = log_traffic(classifiers, store_url)
    html = report.build(
        source(store_url), Registry(classifiers.models_dir), "breast_cancer", Window()
    )
    return html, ids


def test_the_report_requests_nothing_from_the_network(built: tuple[str, list[str]]) -> None:
    html, _ = built
    assert "default-src 'none'" in html
    for needle in ("<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import"):
        assert needle not in html.lower(), needle
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # a namespace name, never fetched


def test_the_report_embeds_aggregates_not_rows(built: tuple[str, list[str]]) -> None:
    html, ids = built
    assert not [rid for rid in ids if rid in html]
    assert str(MARKER) not in html
    assert len(html.encode()) < 300 * 1024


def test_drifted_features_come_first(built: tuple[str, list[str]]) -> None:
    html, _ = built
    titles = re.findall(r"<title>([^<]+): (drifted|stable|insufficient data)", html)
    features = [(name, status) for name, status in titles if name != "prediction"]
    drifted = [name for name, status in features if status == "drifted"]
    assert sorted(drifted) == sorted(SHIFTED)
    statuses = [status for _, status in features]
    assert statuses == sorted(statuses, key=lambda s: s != "drifted")
    assert len(features) == 30


def test_a_version_without_a_reference_still_gets_a_report(
    classifiers: Zoo, store_url: str, tmp_path: Path
) -> None:
    metadata, trained = classifiers.versions[0]
    root = tmp_path / "models"
    old = save_version(root, metadata, trained.pipeline, reference=None)
    insert_predictions(
        store_url,
        [Logged(old.name, old.version, {}, "benign", at(T0) + timedelta(minutes=i))
         for i in range(5)],
    )  # fmt: skip
    html = report.build(source(store_url), Registry(root), "breast_cancer")
    assert "Not available" in html
    assert "no reference profile" in html


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    reason = "the report's browser test needs chromium (apt-get install -y chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1: {reason}")
    pytest.skip(f"SKIPPING: {reason}")


def screenshot(page: Path, out: Path, profile: Path, size: str = "1000,2400") -> Image.Image:
    """Headless Chromium's picture of ``page``, with no network, extensions or sync."""
    subprocess.run(
        [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--screenshot={out}", f"--window-size={size}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return Image.open(out).convert("RGB")


def _share(pixels: np.ndarray, color: str) -> float:
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels.astype(int) - rgb).sum(axis=2) < 30).mean())


def test_chromium_draws_the_report(built: tuple[str, list[str]], tmp_path: Path) -> None:
    html, _ = built
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    image = screenshot(page, tmp_path / "report.png", tmp_path / "chromium-profile")
    pixels = np.asarray(image)
    assert pixels.shape[:2] == (2400, 1000)
    assert pixels.std() > 20  # not a blank page
    assert (pixels.min(axis=2) < 200).mean() > 0.05  # ink, not only background
    for color in (svg.REFERENCE, svg.LIVE, svg.DRIFTED, svg.PALETTE[1]):
        assert _share(pixels, color) > 0.001, f"no {color} drawn"


def test_hundreds_of_features_and_categories_stay_within_a_few_hundred_kb() -> None:
    """Plots are capped (drifted first, the rest listed) and so are bars per plot."""
    numbers = [
        ColumnDrift(
            name=f"feature {i}", kind="number", status="drifted" if i < 5 else "stable",
            drifted=i < 5, statistic="jensen_shannon_distance", value=0.5 if i < 5 else 0.01,
            threshold=0.1, rows=1000, reference_rows=5000,
            histogram=Histogram(cells=[f"[{j}, {j + 1})" for j in range(10)],
                                reference=[500] * 10, live=[100] * 10, edges=list(range(11))),
        )
        for i in range(400)
    ]  # fmt: skip
    many = [f"city {j}" for j in range(300)]
    city = ColumnDrift(
        name="city", kind="category", status="stable", drifted=False,
        statistic="jensen_shannon_distance", value=0.02, threshold=0.1, rows=1000,
        reference_rows=5000, histogram=Histogram(cells=many, reference=[10] * 300, live=[3] * 300),
    )  # fmt: skip
    drifted = DriftReport(
        model="big", version="20260101-000000-000000", since=None, until=None, status="ok",
        rows=1000, statistic="jensen_shannon_distance", threshold=0.1, features=[city, *numbers],
    )  # fmt: skip
    overall = QualityReport(
        model="big", task="classification", since=None, until=None, metrics=["accuracy"],
        versions=[],
    )  # fmt: skip
    html = report.render(
        drifted, overall, shares=[], points=[], seconds=3600, classes=[],
        generated_at=at(T0),
    )  # fmt: skip
    assert len(html.encode()) < 400 * 1024
    assert html.count("<figure class=") == report.MAX_PLOTS
    assert "feature 399: stable, JS = 0.0100" in html  # listed, not plotted
    assert html.index("feature 0:") < html.index("city:")
