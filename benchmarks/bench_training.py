"""Training speed and memory: stock PyTorch kernels vs this engine's, side by side.

Each variant trains the paper-sized FactoFormer on the bundled Indian Pines scene with the
paper's recipe (batch 32) for a fixed number of steps in its own process, so that peak
memory (max RSS) and allocator settings do not leak between variants:

* ``stock``: torch's scaled_dot_product_attention with dropout_p and F.dropout, default malloc.
* ``engine``: chunked DropoutAttention, PCG64 dropout masks and tuned malloc (the default).

Usage: python benchmarks/bench_training.py [--steps 110] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_RUN_STEPS = 80 * 22  # 80 epochs x ceil(695 / 32) batches
REFERENCE_MINUTES = 20.0  # official FactoFormer code, same machine kind, 2 cores (brief)
REFERENCE_RSS_GB = 3.6


def run_variant(variant: str, steps: int, threads: int | None) -> dict:
    from dataclasses import replace

    from engine.config import PAPER_RECIPES
    from engine.data.prepared import PreparedScene
    from engine.data.scenes import load_indian_pines
    from engine.models import Kernels
    from engine.training.trainer import configure_cpu, train

    configure_cpu(threads, tune_malloc=variant == "engine")
    kernels = Kernels(fast_dropout=variant == "engine")
    prepared = PreparedScene.from_scene(load_indian_pines(), patch_size=7)
    recipe = replace(PAPER_RECIPES["indian_pines"], max_steps=steps)
    result = train(prepared, recipe, show_progress=False, kernels=kernels)
    return {
        "variant": variant,
        "steps": result.steps,
        "seconds_per_step": result.seconds / result.steps,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=110, help="steps per variant (5 epochs)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--variant", choices=("stock", "engine"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.steps, args.threads)))
        return
    rows = {}
    for variant in ("stock", "engine"):
        cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rows[variant] = json.loads(out.strip().splitlines()[-1])
    print(f"FactoFormer training on Indian Pines, batch 32, {args.steps} steps per variant")
    print(f"{'variant':8s} {'s/step':>8s} {'80 epochs (min)':>16s} {'max RSS (GB)':>13s}")
    for name, row in rows.items():
        minutes = row["seconds_per_step"] * FULL_RUN_STEPS / 60
        print(f"{name:8s} {row['seconds_per_step']:8.3f} {minutes:16.1f} {row['max_rss_gb']:13.2f}")
    stock, engine = rows["stock"], rows["engine"]
    engine_minutes = engine["seconds_per_step"] * FULL_RUN_STEPS / 60
    speedup = stock["seconds_per_step"] / engine["seconds_per_step"]
    print(f"speed-up engine vs stock kernels: {speedup:.2f}x")
    print(
        f"vs reference (official code, {REFERENCE_MINUTES:.0f} min, {REFERENCE_RSS_GB} GB RSS): "
        f"{REFERENCE_MINUTES / engine_minutes:.1f}x faster, "
        f"{REFERENCE_RSS_GB / engine['max_rss_gb']:.1f}x less memory"
    )


if __name__ == "__main__":
    main()
