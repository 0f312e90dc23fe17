"""Run a notebook headless on this interpreter (the .venv), cell by cell, saying which cell
runs, and write the executed copy (with outputs and figures) where it says at the end.

    .venv/bin/python notebooks/execute.py [NOTEBOOK] [--output EXECUTED.ipynb]

``make notebook`` runs ``notebooks/exploration.ipynb`` into ``var/notebooks/``. The kernel
starts in the repository root, like the tests' run of the same notebook.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def kernel_manager(folder: Path) -> AsyncKernelManager:
    """A kernel on this interpreter, whatever kernels the machine has registered."""
    spec_dir = folder / "kernels" / "skship-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "skship .venv",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="skship-venv", kernel_spec_manager=specs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebook", nargs="?", type=Path, default=ROOT / "notebooks/exploration.ipynb"
    )
    parser.add_argument("--output", type=Path, help="default: var/notebooks/<name>")
    args = parser.parse_args()
    output = args.output or ROOT / "var" / "notebooks" / args.notebook.name
    notebook = nbformat.read(args.notebook, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    started = time.monotonic()

    def on_cell_execute(cell: Any, cell_index: int, **_: Any) -> None:
        number = code.index(cell) + 1 if cell in code else cell_index
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        print(
            f"[{time.monotonic() - started:5.1f} s] cell {number}/{len(code)}: {first[:70]}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(
            notebook,
            km=kernel_manager(Path(folder)),
            timeout=600,
            resources={"metadata": {"path": str(ROOT)}},
            on_cell_execute=on_cell_execute,
        )
        client.execute()
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)
    print(f"executed {args.notebook} in {time.monotonic() - started:.0f} s; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
