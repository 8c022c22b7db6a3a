"""Running the engine's training commands in a separate Python process.

Training changes process-wide settings (torch and OpenMP thread counts, the allocator's
thresholds) and may need a Python with PyTorch that QGIS's own Python lacks, so the
plugin never trains inside QGIS: it starts the bundled engine's ``train|pretrain ...``
commands in that Python (:data:`ENGINE_BOOTSTRAP`) and reads its JSON progress lines.
Nothing here imports QGIS.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON_ENV = "FACTOFORMER_PYTHON"
PYTHON_NAMES = ("python3", "python", "python3.exe", "python.exe")
POLL_SECONDS = 0.2
# ``python -c`` with the engine's folder first on sys.path, in place of the working
# directory's '' entry when there is one (isolated Pythons have none; their first entry,
# the standard library, stays): relative paths resolve against the caller's directory, yet
# an ``engine`` folder there cannot shadow the bundled engine (``python -m`` would put the
# working directory first). No spaces, for launchers that split command lines on them.
ENGINE_BOOTSTRAP = (
    "import\tsys,runpy;root=sys.argv.pop(1);"
    "sys.path[:1]=[root]if\tsys.path[:1]==['']else[root,*sys.path[:1]];"
    "runpy.run_module('engine',run_name='__main__',alter_sys=True)"
)


class RunnerError(Exception):
    """The training process cannot start, or failed; the message is one line for the user."""


class Cancelled(RunnerError):
    """The user cancelled; the process was stopped."""


def find_python(environ: dict[str, str] | None = None) -> list[str]:
    """The command that starts the Python interpreter to train with.

    ``FACTOFORMER_PYTHON`` wins (a path, or a command with arguments such as
    ``/usr/bin/python3 -S``). Else QGIS's own interpreter: ``sys.executable`` when it is a
    Python (Linux); on Windows and macOS it is the QGIS program itself, so a
    ``python3``/``python`` (``.exe``) is looked for in ``sys.exec_prefix`` and
    ``sys.base_prefix``, in ``bin/`` or at the root.
    """
    environ = os.environ if environ is None else environ
    override = environ.get(PYTHON_ENV, "").strip()
    if override:
        if Path(override).is_file():
            return [override]
        return shlex.split(override, posix=os.name != "nt")
    if Path(sys.executable).name.lower().startswith("python") and Path(sys.executable).is_file():
        return [sys.executable]
    looked = []
    for prefix in dict.fromkeys((sys.exec_prefix, sys.base_prefix)):
        for folder in (Path(prefix) / "bin", Path(prefix)):
            looked.append(str(folder))
            for name in PYTHON_NAMES:
                if (folder / name).is_file():
                    return [str(folder / name)]
    raise RunnerError(
        f"no Python interpreter found next to QGIS (looked for python3/python in "
        f"{', '.join(looked)}); set the environment variable {PYTHON_ENV} to one that has "
        "PyTorch"
    )


def torch_hint(python: Sequence[str]) -> str:
    """The exact command that installs PyTorch into ``python``."""
    return f"{' '.join(_quote(p) for p in python)} -m pip install torch"


def check_torch(python: Sequence[str], timeout: float = 120.0) -> None:
    """Refuse with the install hint when ``import torch`` fails in ``python``."""
    try:
        done = subprocess.run(
            [*python, "-c", "import torch"],
            capture_output=True,
            text=True,
            timeout=timeout,
            **_hidden_window(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunnerError(f"cannot start {' '.join(python)}: {exc}") from None
    if done.returncode != 0:
        raise RunnerError(
            "training needs PyTorch, which this Python lacks "
            f"({' '.join(python)}); install it with: {torch_hint(python)}"
        )


@dataclass
class Progress:
    """One progress line of the training process."""

    label: str
    fraction: float
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None


def run_engine(
    python: Sequence[str],
    engine_root: str | os.PathLike[str],
    args: Sequence[str],
    on_progress: Callable[[Progress], None],
    on_line: Callable[[str], None],
    is_cancelled: Callable[[], bool],
    threads: int | None = None,
) -> list[str]:
    """Run ``python -m engine ARGS`` from the engine in ``engine_root``; returns its lines.

    The process works in the caller's working directory, so relative paths in ``args``
    mean what they mean to the caller.

    Progress lines (``--progress-json``) go to ``on_progress``, every other line of
    stdout and stderr to ``on_line``. When ``is_cancelled`` turns true the process is
    stopped (terminate, then kill) and :class:`Cancelled` is raised; a failure raises
    :class:`RunnerError` with the engine's ``error:`` line.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(engine_root), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        process = subprocess.Popen(
            [*python, "-c", ENGINE_BOOTSTRAP, str(engine_root), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
            **_hidden_window(),
        )
    except OSError as exc:
        raise RunnerError(f"cannot start {' '.join(python)}: {exc}") from None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read, args=(process, lines), daemon=True)
    reader.start()
    log: list[str] = []
    finished = False
    while not finished:
        if is_cancelled():
            _stop(process)
            reader.join(5)
            raise Cancelled("cancelled by the user")
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if line is None:
            finished = True
            continue
        parsed = _parse(line)
        if isinstance(parsed, Progress):
            on_progress(parsed)
        elif parsed.strip():
            log.append(parsed)
            on_line(parsed)
    code = process.wait()
    if code != 0:
        errors = [x for x in log if x.startswith("error:")]
        reason = errors[-1][len("error:") :].strip() if errors else (log[-1] if log else "")
        raise RunnerError(reason or f"the training process failed (exit code {code})")
    return log


def _read(process: subprocess.Popen, lines: queue.Queue) -> None:
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            lines.put(line.rstrip("\r\n"))
    lines.put(None)


def _parse(line: str) -> Progress | str:
    """A progress record, or the line to log (a JSON warning as ``warning: ...``)."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line
    if not isinstance(record, dict):
        return line
    if record.get("event") == "warning":
        return f"warning: {record.get('message', '')}"
    if record.get("event") != "progress":
        return line
    return Progress(
        str(record.get("label", "")),
        float(record.get("fraction", 0.0)),
        record.get("epoch"),
        record.get("epochs"),
        record.get("loss"),
    )


def _stop(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate the process (the CLI then removes what it staged), kill it if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _hidden_window() -> dict:
    """No console window flashing up on Windows."""
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


def _quote(text: str) -> str:
    return f'"{text}"' if " " in text else text
