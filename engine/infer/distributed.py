"""Many scenes, and large scenes in blocks, classified on a Dask distributed cluster.

This process (the driver) opens and checks every input and stages its outputs exactly as
:class:`~engine.infer.classify.TiledClassifier` does. Each scene is cut into blocks of
whole tiles of the classifier's tile grid; Dask workers classify a block tile by tile
with the same read / fill / predict pipeline (so every pixel gets the bits the
single-process path gives it) and save its layers to a file in a hidden folder beside the
outputs. The driver writes the blocks into the staged outputs and moves them into place
together when the scene's last block arrives. A block file is written atomically and
reused if its worker dies before the driver has its result, so a killed worker costs only
the blocks it was classifying.

Each worker process keeps one ONNX Runtime session per model and settings (sessions are
never pickled: a task carries the model's path), with ``cores // worker threads`` calls in
flight, so worker threads x ONNX Runtime threads never exceed the cores.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.bands import SELECT
from ..data.files import GdalName, is_virtual
from ..data.gdal_log import gdal_messages_logged
from ..errors import CancelledError, EngineError, InputDataError, OutputError, first_line
from ..progress import Feedback, SilentFeedback, warn
from ..system import available_cores
from .classify import (
    DEFAULT_BATCH_SIZE,
    ClassificationReport,
    StagedRun,
    TiledClassifier,
    tile_layers,
)
from .inputs import RangeMonitor
from .model import OnnxClassifier
from .outputs import StagedFolder, check_destination
from .windows import Window, tile_raster

DEFAULT_BLOCK_SIZE = 1024  # block edge in pixels, rounded down to whole tiles (at least one)
LARGE_SCENE_PIXELS = 4096 * 4096  # a single scene this large goes to a local cluster
OUTPUT_SUFFIXES = {
    "class_map": "classes",
    "confidence": "confidence",
    "probabilities": "probabilities",
}
POLL_SECONDS = 0.1
Announce = Callable[[str], None]


class ClusterError(EngineError, RuntimeError):
    """Dask is missing, or its scheduler cannot be reached."""


@dataclass(frozen=True)
class ClassifierSpec:
    """What a worker needs to build the driver's classifier: picklable, no session."""

    model: str
    batch_size: int
    tile_size: int
    band_matching: str
    ort_workers: int

    def build(self) -> TiledClassifier:
        model = OnnxClassifier(self.model, workers=self.ort_workers)
        return TiledClassifier(
            model, self.batch_size, self.tile_size, band_matching=self.band_matching
        )


_CLASSIFIERS: dict[ClassifierSpec, TiledClassifier] = {}
_CLASSIFIERS_LOCK = threading.Lock()


def worker_classifier(spec: ClassifierSpec) -> TiledClassifier:
    """The classifier of ``spec`` in this process: one ONNX Runtime session per model and
    settings, built on first use and kept for the process's later tasks."""
    with _CLASSIFIERS_LOCK:
        if spec not in _CLASSIFIERS:
            _CLASSIFIERS[spec] = spec.build()
        return _CLASSIFIERS[spec]


@dataclass(frozen=True)
class BlockJob:
    """One block of one scene: what a worker classifies and where it saves the layers."""

    spec: ClassifierSpec
    raster: str
    mask: str | None
    block: Window
    outputs: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class BlockResult:
    """A saved block: its class counts and input-range counts; ``reused``: found saved."""

    block: Window
    path: str
    counts: np.ndarray
    monitor: tuple[int, int, float, float]
    reused: bool = False


def classify_block(job: BlockJob) -> BlockResult:
    """Worker task: classify the tiles of ``job.block`` and save their layers to
    ``job.path`` (atomically). A block saved by an earlier attempt is not classified again.
    """
    path = Path(job.path)
    if path.exists():
        return _load_result(job, reused=True)
    classifier = worker_classifier(job.spec)
    with gdal_messages_logged():
        source = classifier.open_input(job.raster, job.mask)
        monitor = classifier.range_monitor(source)
        layers: dict[str, np.ndarray] = {}
        block = job.block
        for local in tile_raster(block.width, block.height, classifier.tile_size):
            tile = Window(
                block.col_off + local.col_off,
                block.row_off + local.row_off,
                local.width,
                local.height,
            )
            classes, probs, valid = classifier.classify_tile(
                source, tile, monitor, SilentFeedback()
            )
            for name, bands in tile_layers(classes, probs, valid, job.outputs).items():
                if name not in layers:
                    layers[name] = np.empty((len(bands), block.height, block.width), bands[0].dtype)
                layers[name][(slice(None), *local.slices())] = np.stack(bands)
    counts = np.bincount(layers["class_map"].ravel(), minlength=classifier.meta.num_classes + 1)
    temporary = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    with open(temporary, "wb") as file:
        np.savez(
            file, counts=counts, monitor=np.array(monitor.counts(), dtype=np.float64), **layers
        )
    os.replace(temporary, path)
    return BlockResult(block, job.path, counts, monitor.counts())


def _load_result(job: BlockJob, reused: bool) -> BlockResult:
    with np.load(job.path) as data:
        valid, far, low, high = data["monitor"].tolist()
        return BlockResult(
            job.block, job.path, data["counts"], (int(valid), int(far), low, high), reused
        )


def plan_blocks(width: int, height: int, tile_size: int, block_size: int) -> list[Window]:
    """Blocks of whole tiles of the ``tile_size`` grid, about ``block_size`` pixels a side."""
    edge = max(1, block_size // tile_size) * tile_size
    return list(tile_raster(width, height, edge))


@dataclass
class SceneRequest:
    """One input and its output paths (``class_map``, optional ``confidence`` and
    ``probabilities``); ``mask``: optional user mask."""

    input: str
    outputs: dict[str, str | os.PathLike[str] | None]
    mask: str | None = None


@dataclass
class SceneFailure:
    """An input that could not be classified, with the one-line reason."""

    input: str
    reason: str


@dataclass
class ManyReport:
    """What a run over several scenes produced."""

    scenes: list[ClassificationReport] = field(default_factory=list)
    failures: list[SceneFailure] = field(default_factory=list)
    workers: int = 0
    dashboard: str | None = None
    blocks: int = 0
    reused_blocks: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "scenes": [s.to_dict() for s in self.scenes],
            "failures": [{"input": f.input, "reason": f.reason} for f in self.failures],
            "workers": self.workers,
            "dashboard": self.dashboard,
            "blocks": self.blocks,
            "reused_blocks": self.reused_blocks,
            "seconds": round(self.seconds, 3),
        }


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Inputs from paths, globs (sorted) and ``@list.txt`` files (one input a line; blank
    lines and ``#`` comments skipped; relative paths relative to the list). GDAL names
    (``/vsi...``, subdatasets) pass verbatim. Duplicates are dropped.

    Raises:
        InputDataError: a list file cannot be read, or a glob matches nothing.
    """
    found: list[str] = []
    for item in items:
        if item.startswith("@"):
            found += expand_inputs(_list_file(Path(item[1:])))
        elif glob.has_magic(item) and not is_virtual(item) and not os.path.exists(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise InputDataError(f"no file matches {item}")
            found += matches
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def _list_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"cannot read the input list {path}: {first_line(exc)}") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [e if is_virtual(e) or Path(e).is_absolute() else str(path.parent / e) for e in entries]


def output_requests(
    inputs: Sequence[str],
    output_dir: str | os.PathLike[str],
    confidence: bool = False,
    probabilities: bool = False,
) -> list[SceneRequest]:
    """``DIR/<stem>_classes.tif`` (and ``_confidence``, ``_probabilities``) per input.

    Raises:
        OutputError: the folder is missing or not writable.
        InputDataError: two inputs share a stem (their outputs would collide).
    """
    folder = Path(output_dir)
    check_destination(folder / "check.tif")  # the folder exists and is writable
    wanted = {"class_map": True, "confidence": confidence, "probabilities": probabilities}
    requests, stems = [], {}
    for name in inputs:
        stem = re.sub(r"[^\w.-]+", "_", Path(GdalName(name).name).stem).strip("_") or "scene"
        if stem in stems:
            raise InputDataError(
                f"inputs {stems[stem]} and {name} would both write {stem}_classes.tif; "
                "give them distinct file names"
            )
        stems[stem] = name
        outputs = {k: folder / f"{stem}_{OUTPUT_SUFFIXES[k]}.tif" for k, on in wanted.items() if on}
        requests.append(SceneRequest(name, outputs))
    return requests


def classify_many(
    inputs: Sequence[str],
    model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    confidence: bool = False,
    probabilities: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    feedback: Feedback | None = None,
    announce: Announce | None = None,
    **options,
) -> ManyReport:
    """Classify every input (paths, globs, ``@list.txt``) into ``output_dir``; see
    :func:`classify_scenes` for ``scheduler``, ``workers`` and ``options``."""
    requests = output_requests(expand_inputs(inputs), output_dir, confidence, probabilities)
    return classify_scenes(requests, model, scheduler, workers, feedback, announce, **options)


def classify_scenes(
    requests: Sequence[SceneRequest],
    model: str | os.PathLike[str],
    scheduler: str | None = None,
    workers: int | None = None,
    feedback: Feedback | None = None,
    announce: Announce | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    band_matching: str = SELECT,
    tile_size: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    onnx_threads: int | None = None,
) -> ManyReport:
    """Classify scenes on a Dask cluster; a scene that fails is reported, the others finish.

    Args:
        requests: the inputs and their outputs.
        model: the ``.onnx`` file; workers load it from this path.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``); its workers
            must see the inputs, the model and the output folders under the same paths.
        workers: without ``scheduler``, worker processes of a local cluster (default: one
            per core), one thread each.
        feedback: progress over all scenes and blocks; cancel stops every worker's tasks
            and leaves no partial output (scenes finished before stay).
        announce: receives one line naming the cluster and its dashboard.
        batch_size, band_matching, tile_size: as for :class:`TiledClassifier`.
        block_size: edge of a block in pixels (whole tiles; a smaller scene is one block).
        onnx_threads: ONNX Runtime calls in flight per task; None: each host's cores
            divided by its worker threads.

    Raises:
        ClusterError: Dask is missing or the scheduler cannot be reached.
        CancelledError: the user cancelled.
    """
    feedback = feedback or SilentFeedback()
    start = time.monotonic()
    driver = TiledClassifier(
        OnnxClassifier(model), batch_size, tile_size, band_matching=band_matching
    )
    report = ManyReport()
    run = _Run(driver, block_size, feedback, report)
    try:
        with gdal_messages_logged(), _client(scheduler, workers) as client:
            report.workers, ort_workers = _worker_threads(client)
            ort_workers = onnx_threads or ort_workers
            report.dashboard = _dashboard(client)
            if announce:
                where = f"scheduler {scheduler}" if scheduler else "local cluster"
                board = f", dashboard {report.dashboard}" if report.dashboard else ""
                announce(f"Dask {where}: {report.workers} workers{board}")
            spec = ClassifierSpec(
                str(Path(model).absolute()),
                batch_size,
                driver.tile_size,
                band_matching,
                ort_workers,
            )
            run.run(client, spec, requests)
    finally:  # after a local cluster's workers are gone: none writes into a removed folder
        run.discard_unfinished()
    report.seconds = time.monotonic() - start
    return report


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator:
    """A Dask client of the scheduler at ``scheduler``, or of a new local cluster."""
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(
            "Dask is not installed: python3 -m pip install 'dask[distributed]'"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler {scheduler}: {first_line(exc)}"
            ) from None
        with client:
            yield client
        return
    count = workers or available_cores()
    if count < 1:
        raise InputDataError(f"workers must be at least 1, got {count}")
    with (
        LocalCluster(
            n_workers=count, threads_per_worker=1, processes=True, silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _worker_threads(client) -> tuple[int, int]:
    """(workers, ONNX Runtime calls in flight per task): each host's cores shared by the
    threads of its workers, so worker threads x ONNX Runtime threads stay within its cores."""
    try:
        client.wait_for_workers(1, timeout=120)
    except (TimeoutError, OSError):
        raise ClusterError(
            f"no Dask worker joined {client.scheduler.address} in 2 minutes"
        ) from None
    info = client.scheduler_info()["workers"]
    cores = client.run(available_cores)
    threads: dict[str, int] = {}
    for worker in info.values():
        threads[worker["host"]] = threads.get(worker["host"], 0) + worker["nthreads"]
    per_task = min(
        max(1, cores[address] // threads[worker["host"]])
        for address, worker in info.items()
        if address in cores
    )
    return len(info), per_task


def _dashboard(client) -> str | None:
    try:
        return (
            client.dashboard_link
            if client.scheduler_info().get("services", {}).get("dashboard")
            else None
        )
    except Exception:  # noqa: BLE001 (no dashboard: bokeh missing)
        return None


@dataclass
class _Scene:
    """A scene in flight: its staged outputs, block folder and pending blocks."""

    index: int
    request: SceneRequest
    run: StagedRun
    folder: StagedFolder
    monitor: RangeMonitor
    blocks: int
    pending: dict = field(default_factory=dict)  # future -> block
    results: list[BlockResult] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)

    def discard(self) -> None:
        self.run.discard()
        self.folder.discard()


class _Run:
    """The driver loop: prepares scenes (at most ``in_flight`` at once), submits their
    blocks, assembles finished scenes, records failures, and stops everything on cancel."""

    def __init__(
        self, driver: TiledClassifier, block_size: int, feedback: Feedback, report: ManyReport
    ) -> None:
        self.driver, self.block_size = driver, block_size
        self.feedback, self.report = feedback, report
        self.client = None
        self.spec: ClassifierSpec | None = None
        self.token = uuid.uuid4().hex[:8]
        self.scenes: list[_Scene] = []
        self.finished = 0
        self.total = 0

    def run(self, client, spec: ClassifierSpec, requests: Sequence[SceneRequest]) -> None:
        self.client, self.spec = client, spec
        in_flight = max(2, 2 * self.report.workers)
        queue = list(enumerate(requests))
        self.total = len(queue)
        try:
            while queue or self.scenes:
                while queue and len(self.scenes) < in_flight:
                    self._prepare(*queue.pop(0))
                if self.feedback.is_cancelled():
                    raise CancelledError("cancelled by the user")
                if not self._collect():
                    time.sleep(POLL_SECONDS)
                self._progress()
        except BaseException:
            for scene in self.scenes:
                client.cancel(list(scene.pending))
            raise

    def discard_unfinished(self) -> None:
        """Remove the staged outputs and blocks of every scene not finished (cancel, error)."""
        for scene in self.scenes:
            scene.discard()
        self.scenes.clear()

    def _prepare(self, index: int, request: SceneRequest) -> None:
        try:
            source = self.driver.open_input(request.input, request.mask)
            run = self.driver.start_run(source, request.outputs, self.feedback)
        except Exception as exc:  # noqa: BLE001 (one scene's failure; the others go on)
            self._fail(request, exc)
            self.finished += 1
            return
        rows, cols = source.shape
        try:
            folder = StagedFolder(run.report.class_map)
        except OutputError as exc:
            run.discard()
            self._fail(request, exc)
            self.finished += 1
            return
        blocks = plan_blocks(cols, rows, self.driver.tile_size, self.block_size)
        scene = _Scene(index, request, run, folder, self.driver.range_monitor(source), len(blocks))
        for number, block in enumerate(blocks):
            job = BlockJob(
                self.spec,
                request.input,
                request.mask,
                block,
                tuple(run.staged),
                str(folder.path / f"b{number:06d}.npz"),
            )
            key = f"classify_block-{self.token}-{index}-{number}"
            scene.pending[self.client.submit(classify_block, job, key=key, pure=False)] = block
        self.report.blocks += len(blocks)
        self.scenes.append(scene)

    def _collect(self) -> bool:
        """Take the blocks that finished; assemble or fail their scenes. True if any."""
        any_done = False
        for scene in list(self.scenes):
            done = [f for f in scene.pending if f.done()]
            for future in done:
                any_done = True
                del scene.pending[future]
                if future.status == "finished":
                    result = future.result()
                    scene.results.append(result)
                    self.report.reused_blocks += result.reused
                    continue
                self._drop(scene, _task_error(future, scene.request.input))
                break
            else:
                if not scene.pending:
                    self._assemble(scene)
        return any_done

    def _assemble(self, scene: _Scene) -> None:
        run = scene.run
        counts = np.zeros(self.driver.meta.num_classes + 1, dtype=np.int64)
        try:
            for result in sorted(scene.results, key=lambda r: (r.block.row_off, r.block.col_off)):
                with np.load(result.path) as data:
                    layers = {name: list(data[name]) for name in run.staged}
                self.driver.write_tile(run.staged, result.block, layers)
                counts += result.counts
                scene.monitor.merge(result.monitor)
            message = scene.monitor.warning(final=True)
            if message:
                run.report.warnings.append(message)
                warn(self.feedback, message)
            self.driver.finish_run(run, counts, self.feedback)
        except Exception as exc:  # noqa: BLE001 (one scene's failure; the others go on)
            self._drop(scene, exc)
            return
        scene.folder.discard()
        run.report.seconds = time.monotonic() - scene.start
        self.report.scenes.append(run.report)
        self.scenes.remove(scene)
        self.finished += 1

    def _drop(self, scene: _Scene, exc: BaseException) -> None:
        self.client.cancel(list(scene.pending))
        scene.discard()
        self.scenes.remove(scene)
        self.finished += 1
        self._fail(scene.request, exc)

    def _fail(self, request: SceneRequest, exc: BaseException) -> None:
        if isinstance(exc, CancelledError):
            raise exc
        reason = (
            str(exc)
            if isinstance(exc, EngineError)
            else f"{first_line(exc)} ({type(exc).__name__})"
        )
        self.report.failures.append(SceneFailure(request.input, first_line(Exception(reason))))

    def _progress(self) -> None:
        partial = sum(len(s.results) / s.blocks for s in self.scenes)
        self.feedback.set_progress((self.finished + partial) / max(self.total, 1))


def _task_error(future, name: str) -> BaseException:
    """The error a block's task ended with, as one line for ``name``."""
    try:
        exc = future.exception()
    except Exception as cancelled:  # noqa: BLE001 (the scheduler dropped the task)
        return EngineError(f"{GdalName(name).name}: {first_line(cancelled)}")
    if type(exc).__name__ == "KilledWorker":
        return EngineError(
            f"the Dask workers classifying {GdalName(name).name} died repeatedly "
            "(out of memory?); see the workers' logs"
        )
    return exc
