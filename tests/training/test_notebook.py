"""The exploration notebook runs top to bottom, headless, on this checkout's .venv.

Its last cells assert that ``python -m training train`` reproduces the notebook's chosen
model (metrics and predictions), so this test also guards that claim.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

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
def test_notebook_executes_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MODELS_DIR", "MODEL_NAME", "TRAIN_MIN_SCORE", "TRAIN_TOLERANCE"):
        monkeypatch.delenv(variable, raising=False)
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
    assert "identical metrics and predictions" in text
    assert len(figures) == 3
