"""Classification on Dask from Processing: the engine's ``classify`` command in its own process.

A Dask cluster sends each task as a reference to its function, which the workers import
by name; inside QGIS the plugin's engine is ``factoformer.engine``, everywhere else
(``dask worker`` processes, the command line) it is ``engine``. Running ``python -m
engine classify`` in a separate Python with the plugin folder on its path gives the
workers the name they know, keeps Dask's local worker processes out of QGIS, and lets
Cancel stop the cluster with the process. It needs ``dask[distributed]`` in that Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ..runner import Cancelled, Progress, RunnerError, find_python, run_engine
from .engine_process import CANCELLED, ENGINE_ROOT

WROTE = re.compile(r"^wrote (?P<path>.+): (?P<classified>\d+) pixels classified, (?P<nodata>\d+)")
SCHEDULER_HELP = (
    "Optional address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786): the raster's "
    "blocks are classified by its workers, which must see the input, the model and the "
    "output folder under the same paths and have the engine and dask[distributed] "
    "installed. Empty: classify here."
)


def run_classify(args: Sequence[str], feedback: QgsProcessingFeedback) -> list[dict[str, str]]:
    """Run ``python -m engine classify ARGS``; returns what each scene wrote (``path``,
    ``classified``, ``nodata``). Failed scenes are reported as errors in the log.

    Raises:
        QgsProcessingException: any scene failed (naming each), the run failed, or cancel.
    """
    failures: list[str] = []

    def on_progress(progress: Progress) -> None:
        feedback.setProgress(100.0 * progress.fraction)

    def on_line(text: str) -> None:
        if text.startswith("error:"):
            failures.append(text[len("error:") :].strip())
            feedback.reportError(failures[-1], False)
        elif text.startswith("warning:"):
            feedback.pushWarning(f"Warning: {text[len('warning:') :].strip()}")
        else:
            feedback.pushInfo(text)

    try:
        lines = run_engine(
            find_python(),
            ENGINE_ROOT,
            ["classify", *args, "--progress-json"],
            on_progress,
            on_line,
            feedback.isCanceled,
        )
    except Cancelled:
        raise QgsProcessingException(CANCELLED) from None
    except RunnerError as exc:
        if len(failures) > 1:
            raise QgsProcessingException(
                f"{len(failures)} rasters failed: {'; '.join(failures)}"
            ) from None
        raise QgsProcessingException(str(exc)) from None
    return [m.groupdict() for m in map(WROTE.match, lines) if m]
