"""The penguins notebook runs top to bottom, headless, on this checkout's .venv.

It fits the pipeline of ``notebooks/penguin_pipeline.py``, registers it, and has
``python -m training train --pipeline`` rebuild it, then serves it and asserts (in its own
cells) that live accuracy from the labels it sends is right and that drift flags exactly the
feature it shifts; this test then checks the registry it wrote: the two versions are the
same model (fingerprint, metrics, predictions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from serving import artifact
from training.data import load_builtin

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "exploration.ipynb"


def _kernel_manager(tmp_path: Path) -> AsyncKernelManager:
    """A kernel on this interpreter (the .venv), whatever kernels the machine has registered."""
    spec_dir = tmp_path / "kernels" / "skship-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "skship .venv",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="skship-venv", kernel_spec_manager=specs)


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_registers_and_reproduces_the_same_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("MODEL_NAME", "TRAIN_MIN_SCORE", "TRAIN_TOLERANCE", "ARTIFACT_SIGNING_KEY"):
        monkeypatch.delenv(variable, raising=False)
    models_dir = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(models_dir))  # the notebook's registry, kept
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # matplotlib's inline backend (the kernel's default) renders with Agg: no display needed.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path),
        timeout=300,
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    text = "".join(output.get("text", "") for output in outputs)
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert "same metrics, same predictions, same fingerprint: sha256:" in text
    assert len(figures) == 3
    assert artifact.list_models(models_dir) == ["penguins", "penguins_job"]
    monkeypatch.syspath_prepend(str(ROOT / "notebooks"))  # where penguin_pipeline lives
    trusted = ["penguin_pipeline.BillShape"]
    registered = artifact.load(artifact.resolve(models_dir, "penguins"), trusted_types=trusted)
    trained = artifact.load(artifact.resolve(models_dir, "penguins_job"), trusted_types=trusted)
    assert (registered.metadata.origin, trained.metadata.origin) == ("registered", "trained")
    assert registered.metadata.trusted_types == ["numpy.dtype", *trusted]
    assert registered.metadata.fingerprint == trained.metadata.fingerprint
    assert registered.metadata.metrics == trained.metadata.metrics
    assert registered.metadata.metrics["balanced_accuracy"] > 0.95
    X = load_builtin("penguins").X
    assert np.array_equal(registered.pipeline.predict_proba(X), trained.pipeline.predict_proba(X))
