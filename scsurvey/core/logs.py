"""Where the libraries' log records and warnings go: a log file, not the user's terminal.

Standard library only, so the command line can call it before any library is imported.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

LOG = Path("logs") / "scsurvey.log"  # under the project root
# the libraries whose log records and warnings go to LOG, not the terminal: the project reads
# their diagnostics itself and says what matters (PyTensor's note that it found no BLAS, ArviZ's
# notice of its coming refactor, and the like do not apply to what a user asked for)
LIBRARIES = ("pytensor", "pymc", "arviz", "nutpie", "numba", "jax", "distributed", "matplotlib")


_INSTALLED: set[Path] = set()


def quiet_libraries(root: Path | str) -> Path:
    """Send the libraries' log records and warnings to ``<root>/logs/scsurvey.log``.

    The project's own warnings and messages still reach the terminal. Called before any
    library is imported, so that PyTensor finds a handler and adds no terminal one of its own.

    Returns
    -------
    Path
        The log file.
    """
    path = (Path(root) / LOG).resolve()
    if path in _INSTALLED:  # once per process and log: no doubled handlers or wrappers
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError:  # a read-only project: leave the libraries as they are
        return path
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    for name in (*LIBRARIES, "py.warnings"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    package = str(Path(__file__).resolve().parent.parent)  # scsurvey/
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(package) or not any(
            f"{os.sep}{lib}" in str(filename) for lib in LIBRARIES
        ):
            show(message, category, filename, lineno, file, line)
        else:
            logging.getLogger("py.warnings").warning(
                warnings.formatwarning(message, category, filename, lineno, line)
            )

    warnings.showwarning = showwarning
    _INSTALLED.add(path)
    return path
