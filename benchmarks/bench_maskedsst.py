"""MaskedSST training speed: seconds per optimiser step of the full-size model on Indian Pines.

Pretraining (batch 16 tiles, tube masks; every token encoded as the official code does,
and only the visible pixels with one spatial decoder block) and fine-tuning (batch 8
tiles) run their real
steps (tile cutting, masks, forward, backward, Adam) through the shared loop, in float32
and under bfloat16 autocast; the first step is a warm-up and is not counted. Wall and CPU
seconds are reported: other processes on the machine slow the wall time down (the load
average is printed), while with ``--threads 1`` the CPU time is what a step costs one
core. The study's default budgets are then converted to minutes.

Usage: python benchmarks/bench_maskedsst.py [--steps 4] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import (  # noqa: E402
    DEFAULT_DENSE_STEPS,
    DenseTrainingRecipe,
    MaskedPretrainingRecipe,
    MaskedSSTConfig,
)
from engine.data.scenes import load_indian_pines  # noqa: E402
from engine.data.training_set import TrainingSet  # noqa: E402
from engine.pretraining.data import scene_unlabelled_pixels  # noqa: E402
from engine.pretraining.maskedsst import pretrain_maskedsst  # noqa: E402
from engine.pretraining.run import hardware  # noqa: E402
from engine.training.dense import train_dense  # noqa: E402
from engine.training.trainer import configure_cpu  # noqa: E402


class StepClock:
    """Feedback that notes wall and CPU time after every step (the loop reports once per
    step). CPU time is this process's: with one thread it is what the step costs a core,
    whatever else runs on the machine."""

    def __init__(self) -> None:
        self.times = [(time.monotonic(), time.process_time())]

    def set_progress(self, fraction: float) -> None:
        self.times.append((time.monotonic(), time.process_time()))

    def is_cancelled(self) -> bool:
        return False

    def seconds_per_step(self) -> tuple[float, float]:
        """Median (wall, CPU) seconds of the steps after the first."""
        marks = self.times[1:-1]  # the last mark is the loop's final report
        pairs = list(zip(marks, marks[1:], strict=False))
        wall = statistics.median(b[0] - a[0] for a, b in pairs)
        return wall, statistics.median(b[1] - a[1] for a, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    configure_cpu(args.threads)
    scene = load_indian_pines()
    pixels = scene_unlabelled_pixels(scene, 15)
    data = TrainingSet.from_scene(scene, 15)
    config = MaskedSSTConfig(num_bands=200, num_classes=16)
    n = args.steps + 1
    print(f"{hardware()}; load average before: {os.getloadavg()}")
    default = MaskedPretrainingRecipe()
    pretrain_steps = default.epochs * default.tiles_per_epoch // default.batch_size
    rows = []
    for bf16 in (False, True):
        pretrain = []
        for encoder in ("mask-token", "visible"):
            clock = StepClock()
            recipe = MaskedPretrainingRecipe(
                epochs=1,
                tiles_per_epoch=16 * n,
                bf16=bf16,
                encoder=encoder,
                decoder_depth=int(encoder == "visible"),
            )
            pretrain_maskedsst(pixels, config, recipe, feedback=clock)
            pretrain.append(clock.seconds_per_step())
        clock = StepClock()
        recipe = DenseTrainingRecipe(epochs=1, max_steps=n, bf16=bf16)
        train_dense(data, recipe, config, feedback=clock)
        finetune = clock.seconds_per_step()
        rows.append(("bf16" if bf16 else "float32", *pretrain, finetune))
    print(f"load average after: {os.getloadavg()}")
    print(
        "| precision | pretraining s/step, 16 tiles (wall / CPU) | the same, visible-pixel "
        "encoder | fine-tuning s/step, 8 tiles (wall / CPU) | default pretraining "
        f"({pretrain_steps} steps, {default.encoder} encoder) + 2 x {DEFAULT_DENSE_STEPS} "
        "fine-tuning steps (wall / CPU) |"
    )
    print("|---|---|---|---|---|")
    for name, pre, visible, fine in rows:
        default_pre = visible if default.encoder == "visible" else pre
        wall, cpu = (
            (pretrain_steps * default_pre[i] + 2 * DEFAULT_DENSE_STEPS * fine[i]) / 60
            for i in (0, 1)
        )
        print(
            f"| {name} | {pre[0]:.2f} / {pre[1]:.2f} | {visible[0]:.2f} / {visible[1]:.2f} | "
            f"{fine[0]:.2f} / {fine[1]:.2f} | {wall:.0f} / {cpu:.0f} min |"
        )


if __name__ == "__main__":
    main()
