"""``classify`` on several scenes or a Dask cluster: the arguments and the run.

One small input without ``--workers``/``--scheduler`` stays on the single-process path
(:func:`engine.infer.classify.classify_raster`); several inputs, a cluster, or a scene of
more than :data:`~engine.infer.distributed.LARGE_SCENE_PIXELS` pixels go to
:func:`engine.infer.distributed.classify_scenes`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

WANTED = ""  # --confidence/--probabilities given without a path (with --output-dir)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output-dir",
        help="folder for several inputs: DIR/<input stem>_classes.tif (and _confidence.tif, "
        "_probabilities.tif when asked)",
    )
    for name, what in (("confidence", "confidence"), ("probabilities", "per-class probability")):
        p.add_argument(
            f"--{name}",
            nargs="?",
            const=WANTED,
            metavar="PATH",
            help=f"optional {what} GeoTIFF; with --output-dir give it without a path",
        )


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many or large scenes on Dask (dask[distributed])")
    g.add_argument(
        "--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    g.add_argument(
        "--workers",
        type=int,
        help="worker processes of a local Dask cluster (default with several inputs: one per "
        "core); with one input, its blocks are shared out",
    )
    g.add_argument(
        "--block-size",
        type=int,
        help="block edge in pixels that a worker classifies at once (whole tiles; default 1024)",
    )
    p.add_argument(
        "--progress-json",
        action="store_true",
        help="progress as JSON lines on stdout (for the QGIS plugin)",
    )


def feedback(args: argparse.Namespace) -> Any:
    """The progress display the arguments ask for: none, JSON lines or a bar."""
    from .progress import JsonLinesFeedback, ProgressBar, SilentFeedback

    if args.progress_json:
        return JsonLinesFeedback("classify")
    return SilentFeedback() if args.quiet else ProgressBar("classify")


def scene_requests(args: argparse.Namespace) -> tuple[list[Any], bool]:
    """The scenes and their outputs; True when they go to Dask."""
    from .infer.distributed import SceneRequest, expand_inputs, output_requests

    inputs = expand_inputs(args.inputs)
    if args.mask and len(inputs) > 1:
        raise SystemExit("error: --mask needs a single input")
    if args.output_dir:
        if args.output or any(x not in (None, WANTED) for x in _optional(args)):
            raise SystemExit(
                "error: with --output-dir, give no --output, and --confidence/--probabilities "
                "without a path"
            )
        confidence, probabilities = (x is not None for x in _optional(args))
        requests = output_requests(inputs, args.output_dir, confidence, probabilities)
        requests[0].mask = args.mask
    else:
        if len(inputs) > 1:
            raise SystemExit(f"error: {len(inputs)} inputs need --output-dir")
        if not args.output or WANTED in _optional(args):
            raise SystemExit(
                "error: give --output (and paths for --confidence/--probabilities), or --output-dir"
            )
        outputs = {
            "class_map": args.output,
            "confidence": args.confidence,
            "probabilities": args.probabilities,
        }
        requests = [SceneRequest(inputs[0], outputs, args.mask)]
    distributed = bool(args.scheduler or args.workers or args.block_size) or len(requests) > 1
    return requests, distributed or _large(requests[0].input)


def _optional(args: argparse.Namespace) -> tuple[str | None, str | None]:
    return args.confidence, args.probabilities


def _large(name: str) -> bool:
    """True for a raster above the single-process size; False also when it cannot be
    opened (the single-process path then says why)."""
    from .data.raster import open_raster
    from .errors import EngineError
    from .infer.distributed import LARGE_SCENE_PIXELS

    try:
        ds = open_raster(name)
    except EngineError:
        return False
    return ds.RasterXSize * ds.RasterYSize > LARGE_SCENE_PIXELS


def classify_on_dask(args: argparse.Namespace, requests: list[Any], feedback: Any) -> int:
    """Run the scenes on Dask; prints what each wrote and each failure. Returns 2 when a
    scene failed, else 0."""
    from . import SHIPPED_MODEL
    from .infer.distributed import DEFAULT_BLOCK_SIZE, classify_scenes

    report = classify_scenes(
        requests,
        args.model or SHIPPED_MODEL,
        scheduler=args.scheduler,
        workers=args.workers,
        feedback=feedback,
        announce=lambda line: print(line, file=sys.stderr, flush=True),
        batch_size=args.batch_size,
        band_matching=args.band_matching,
        block_size=args.block_size or DEFAULT_BLOCK_SIZE,
    )
    for scene in report.scenes:
        print(
            f"wrote {scene.class_map}: {scene.classified_pixels} pixels classified, "
            f"{scene.nodata_pixels} no-data, {scene.seconds:.1f} s"
        )
    for failure in report.failures:
        print(f"error: {failure.input}: {failure.reason}", file=sys.stderr)
    pixels = sum(s.classified_pixels for s in report.scenes)
    print(
        f"{len(report.scenes)} of {len(requests)} scenes classified on {report.workers} Dask "
        f"workers in {report.seconds:.1f} s ({pixels / max(report.seconds, 1e-9):.0f} pixels/s)"
    )
    return 2 if report.failures else 0
