"""Pretraining speed: seconds per epoch of each branch for each variant, side by side.

Every variant pre-trains the paper-sized branch on the unlabelled pixels of the bundled
Indian Pines scene (10,659 pixels) with the real step (patch cutting, masks, forward,
backward, Adam), times each step after a warm-up for a few seconds and extrapolates the
median step to one epoch. Then the whole recipe (the pixel branch, or both branches,
pre-trained for the recipe's epochs, then the paper's 80-epoch fine-tuning) is estimated
for each named pretraining recipe whose variant was measured.

Variants: ``paper`` (mask-token encoder, batch 32, as the official code), ``stock``
(the same with PyTorch's own attention-dropout and dropout kernels), mask-token at batch
128, ``visible`` (only the visible tokens encoded, one decoder block) at batch 32, 128 and
256, with bf16 autocast, and without dropout.

Wall time is what a user waits on an otherwise idle machine. CPU time (all threads of this
process) is the work itself; on a busy machine run with ``--threads 1``: the CPU time is
then the compute of one core, an upper bound for the wall time on two idle cores.

Usage: python benchmarks/bench_pretraining.py [--seconds 8] [--threads N] [--variants ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.config import (  # noqa: E402
    PRETRAINING_RECIPES,
    FactoFormerConfig,
    PretrainingRecipe,
    paper_encoder,
)
from engine.data.prepared import PreparedScene  # noqa: E402
from engine.data.scenes import Scene, load_indian_pines  # noqa: E402
from engine.models import FactoFormer, Kernels  # noqa: E402
from engine.pretraining.data import PretrainingPixels, scene_unlabelled_pixels  # noqa: E402
from engine.pretraining.masking import TokenMasker  # noqa: E402
from engine.pretraining.objectives import MaskedReconstruction, reconstruction_step  # noqa: E402
from engine.pretraining.run import hardware  # noqa: E402
from engine.training.trainer import configure_cpu  # noqa: E402

PAPER = PRETRAINING_RECIPES["paper"]
VISIBLE = replace(PAPER, encoder="visible", decoder_depth=1)
VARIANTS: dict[str, tuple[PretrainingRecipe, Kernels]] = {
    "paper (mask-token, b32)": (PAPER, Kernels()),
    "stock kernels (mask-token, b32)": (PAPER, Kernels(fast_dropout=False)),
    "mask-token, b128": (replace(PAPER, batch_size=128), Kernels()),
    "visible, b32": (VISIBLE, Kernels()),
    "visible, b128": (replace(VISIBLE, batch_size=128), Kernels()),
    "visible, b128, bf16": (replace(VISIBLE, batch_size=128, bf16=True), Kernels()),
    "visible, b256": (replace(VISIBLE, batch_size=256), Kernels()),
    "visible, b128, no dropout": (replace(VISIBLE, batch_size=128, drop_rate=0.0), Kernels()),
}
WARMUP_STEPS = 3
MIN_STEPS = 5
FINE_TUNE_STEPS = 80 * 22  # paper fine-tuning: 80 epochs x ceil(695 / 32) batches


def seconds_per_step(step, parameters, seconds: float) -> tuple[float, float, int]:
    """Median wall and CPU time of one optimiser step over about ``seconds`` after a warm-up.

    Medians, not means, so that a few steps slowed by other processes on a shared machine
    do not decide the figures. CPU time (all threads of this process) shows the work
    itself when the machine is busy: with one thread it is the step's compute time.
    """
    optimizer = torch.optim.Adam(parameters, lr=5e-4)
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(WARMUP_STEPS + MIN_STEPS * 100):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = step(i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= WARMUP_STEPS:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            if len(wall) >= MIN_STEPS and sum(wall) >= seconds:
                break
    return float(np.median(wall)), float(np.median(cpu)), len(wall)


def pretraining_step(pixels: PretrainingPixels, branch: str, recipe, kernels):
    config = paper_encoder(pixels.num_bands, branch)
    model = MaskedReconstruction(config, recipe.encoder == "visible", recipe.decoder_depth, kernels)
    model.train()
    masker = TokenMasker(len(pixels), config.num_tokens, recipe.mask_ratio, recipe.masks, 0)
    step = reconstruction_step(model, pixels, masker, recipe)
    rng = np.random.default_rng(0)

    def run(i: int) -> torch.Tensor:
        return step(rng.choice(len(pixels), recipe.batch_size, replace=False), i)[0]

    return run, model.parameters()


def fine_tuning_step(scene: Scene):
    prepared = PreparedScene.from_scene(scene, 7)
    model = FactoFormer(FactoFormerConfig(num_bands=200, num_classes=16)).train()
    rows, cols, labels = Scene.pixels(scene.train_labels)
    targets = torch.from_numpy(labels.astype(np.int64) - 1)
    rng = np.random.default_rng(0)

    def run(i: int) -> torch.Tensor:
        idx = rng.choice(len(rows), 32, replace=False)
        logits = model(torch.from_numpy(prepared.extractor(rows[idx], cols[idx])))
        return torch.nn.functional.cross_entropy(logits, targets[idx])

    return run, model.parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per variant")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), metavar="VARIANT")
    args = parser.parse_args()
    configure_cpu(args.threads)
    scene = load_indian_pines()
    pixels = scene_unlabelled_pixels(scene)
    hw = hardware()
    print(
        f"{hw['cpu']}, {hw['torch_threads']} torch threads; {len(pixels)} pretraining pixels; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'variant':34s} {'branch':6s} {'s/step':>7s} {'cpu s':>7s} {'steps':>6s} {'s/epoch':>8s}"
    )
    per_epoch: dict[tuple[str, str], float] = {}
    cpu_epoch: dict[tuple[str, str], float] = {}
    for name in args.variants or VARIANTS:
        recipe, kernels = VARIANTS[name]
        for branch in ("pixel", "band"):
            step, params = pretraining_step(pixels, branch, recipe, kernels)
            s, cpu, n = seconds_per_step(step, params, args.seconds)
            epoch = s * -(-len(pixels) // recipe.batch_size)
            per_epoch[name, branch] = epoch
            cpu_epoch[name, branch] = cpu * -(-len(pixels) // recipe.batch_size)
            print(f"{name:34s} {branch:6s} {s:7.3f} {cpu:7.3f} {n:6d} {epoch:8.1f}", flush=True)
    step, params = fine_tuning_step(scene)
    s, cpu, n = seconds_per_step(step, params, args.seconds)
    tune_wall, tune_cpu = s * FINE_TUNE_STEPS, cpu * FINE_TUNE_STEPS
    print(f"{'fine-tuning (paper, b32)':34s} {'both':6s} {s:7.3f} {cpu:7.3f} {n:6d} {s * 22:8.1f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("\nwhole recipe (pretrain the branches, then fine-tune 80 epochs), estimated:")
    for recipe_name, recipe in PRETRAINING_RECIPES.items():
        name = _variant_of(recipe)
        if name is None or (name, "band") not in per_epoch:
            continue
        timings = (("wall", per_epoch, tune_wall), ("CPU", cpu_epoch, tune_cpu))
        for branches in (("pixel",), ("pixel", "band")):
            for what, epochs, tune in timings:
                pre = recipe.epochs * sum(epochs[name, branch] for branch in branches)
                print(
                    f"  {recipe_name} recipe ({recipe.epochs} epochs, variant '{name}'), "
                    f"{' + '.join(branches)}, {what} time: pretraining {pre / 60:.1f} min + "
                    f"fine-tuning {tune / 60:.1f} min = {(pre + tune) / 60:.1f} min"
                )


def _variant_of(recipe: PretrainingRecipe) -> str | None:
    """The benchmarked variant that runs the same computation as ``recipe``."""
    for name, (variant, kernels) in VARIANTS.items():
        same = replace(variant, epochs=recipe.epochs, learning_rate=recipe.learning_rate)
        if kernels == Kernels() and replace(same, loss=recipe.loss, masks=recipe.masks) == recipe:
            return name
    return None


if __name__ == "__main__":
    main()
