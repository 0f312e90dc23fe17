"""Issue 12's promise, end to end: in a fresh Python process a data scientist fits their own
pipeline (with a custom transformer) on penguins and registers it naming its type as
trusted; the service loads it, predicts equal to the offline pipeline to 1e-9, and logs the
typed features as sent."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from tests.live import live_server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
sys.path.insert(0, {notebooks!r})
import pandas as pd
from penguin_pipeline import build_pipeline
from training import register
from training.data import load_builtin

data = load_builtin("penguins")
model = build_pipeline(seed=0).fit(data.X, data.y)
result = register(model, data.X, data.y, name="own", models_dir={models!r},
                  trusted=["penguin_pipeline.BillShape"])
rows = data.X.iloc[:25]
instances = [{{k: (None if pd.isna(v) else v) for k, v in r.items()}}
             for r in rows.to_dict(orient="records")]
json.dump({{"promoted": result.promoted, "instances": instances,
           "proba": model.predict_proba(rows).tolist(),
           "classes": [str(c) for c in model.classes_]}}, open({out!r}, "w"))
"""


def test_a_pipeline_registered_in_a_fresh_process_is_served_exactly(tmp_path: Path) -> None:
    models, out = tmp_path / "models", tmp_path / "expected.json"
    script = SCRIPT.format(notebooks=str(ROOT / "notebooks"), models=str(models), out=str(out))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=tmp_path)
    expected = json.loads(out.read_text())
    assert expected["promoted"]
    env = {
        "MODEL_NAME": "own",
        "MODEL_TRUSTED_TYPES": "penguin_pipeline.BillShape",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "notebooks"), str(ROOT)]),
    }
    with live_server(models, tmp_path, env=env) as server:
        response = httpx.post(
            f"{server.base_url}/predict", json={"instances": expected["instances"]}, timeout=30
        )
        assert response.status_code == 200, response.text
        body = response.json()
        served = [[row[c] for c in expected["classes"]] for row in body["probabilities"]]
        np.testing.assert_allclose(served, expected["proba"], rtol=0, atol=1e-9)
        db = tmp_path / "predictions.db"
        deadline = time.monotonic() + 15
        logged: list[tuple[int, str]] = []
        while time.monotonic() < deadline and len(logged) < 25:
            time.sleep(0.2)
            with sqlite3.connect(db) as conn:
                logged = conn.execute(
                    "SELECT row_index, features FROM predictions WHERE request_id = ?",
                    (body["request_id"],),
                ).fetchall()
    by_row = {index: json.loads(features) for index, features in logged}
    assert [by_row[i] for i in range(25)] == expected["instances"]
    assert any(v is None for row in expected["instances"] for v in row.values())
