"""Run the notebooks top to bottom and store their outputs (the ones nbval checks).

Usage, from the repository root::

    python notebooks/refresh.py                       # every notebook
    python notebooks/refresh.py notebooks/03_*.ipynb  # some of them

Each notebook runs in a fresh kernel of this Python against the sandbox, with
progress bars off (``OTYSPD_PROGRESS=0``), exactly as the test run does. What
changes on every run and is not part of the lesson is left out of the saved
file: execution timings and widget state (the widgets' model ids are random).
The outputs themselves are stored as the kernel produced them.

Needs ``nbclient`` (``pip install nbclient``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    """Execute one notebook in place and strip its volatile metadata."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
        record_timing=False,
        store_widget_state=False,
    )
    client.execute()

    # Keep outputs; drop what differs between runs without meaning anything.
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def main(argv: list[str]) -> int:
    # The kernel inherits this: no progress bars in the stored outputs.
    os.environ["OTYSPD_PROGRESS"] = "0"
    paths = [Path(p) for p in argv] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        refresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
