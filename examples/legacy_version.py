"""Save an iris version as a joblib pickle, the format every version had before skops, to
try ``python -m training convert`` on a registry that has none:

    .venv/bin/python examples/legacy_version.py [MODELS_DIR]

The version becomes the current version of model ``iris_legacy``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from serving import artifact
from training.data import load_builtin
from training.train import build_metadata, fit


def main(models_dir: Path) -> None:
    dataset = load_builtin("iris")
    trained = fit(dataset, cv_folds=0)
    metadata = build_metadata(trained, dataset, name="iris_legacy")
    path = artifact.save(models_dir, metadata, trained.pipeline, format="joblib")
    artifact.write_current(models_dir, "iris_legacy", path.name)
    print(f"saved {path} as model.joblib (a pickle) and made it current")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models"))
