"""Progress bars for long reads and writes, on only where someone is watching.

``tqdm.auto`` draws a widget bar in Jupyter and a text bar in a terminal. The
bar is off by default when nobody is watching: under pytest or nbval, when
stderr is not a terminal outside a notebook, or when ``OTYSPD_PROGRESS=0``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["progress_bar", "progress_wanted"]


def _in_notebook_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_wanted(progress: bool | None) -> bool:
    """Decide whether to draw a bar: an explicit choice wins, else watch for a viewer."""
    if progress is not None:
        return bool(progress)
    setting = os.environ.get("OTYSPD_PROGRESS", "").strip().lower()
    if setting in {"0", "false", "no", "off"}:
        return False
    if setting in {"1", "true", "yes", "on"}:
        return True
    # Test runners (pytest, nbval kernels) set this; bars there only add noise.
    if "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("OTYSPD_UNDER_TEST"):
        return False
    if _in_notebook_kernel():
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _NoBar:
    """Stands in for a tqdm bar when progress is off."""

    n = 0
    total = None

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    progress: bool | None, *, total: int | None, desc: str, unit: str = "rows"
) -> Any:
    """Return a tqdm.auto bar, or a silent stand-in when progress is off."""
    if not progress_wanted(progress):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr)
