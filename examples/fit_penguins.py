"""What a data scientist's script does before ``python -m training register``: fit a pipeline
on a CSV with pandas, dump it with joblib, and keep rows it did not learn from as CSV.

    .venv/bin/python examples/fit_penguins.py var/penguins.joblib var/penguins-eval.csv

The pipeline is ``notebooks/penguin_pipeline.py``'s (with its custom ``BillShape``), so
loading the dump needs that folder on ``PYTHONPATH``, as ``register`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))

from penguin_pipeline import build_pipeline  # noqa: E402 - after the path it lives on


def main(model_file: Path, eval_file: Path) -> None:
    frame = pd.read_csv(ROOT / "examples" / "penguins.csv")
    y = frame.pop("species")
    X_train, X_eval, y_train, y_eval = train_test_split(
        frame, y, test_size=0.2, random_state=0, stratify=y
    )
    model = build_pipeline(seed=0).fit(X_train, y_train)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_file)
    eval_file.parent.mkdir(parents=True, exist_ok=True)
    X_eval.assign(species=y_eval).to_csv(eval_file, index=False)
    print(f"wrote {model_file} and {eval_file} ({len(X_eval)} evaluation rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
