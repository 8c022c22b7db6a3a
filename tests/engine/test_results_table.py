"""scripts/results_table.py: the MaskedSST choice summary, checked by hand-computed values."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO


def _record(seed: int, oa: float, steps: int | None) -> dict:
    pretraining = None
    if steps is not None:
        recipe = {"encoder": "visible", "masking": "tube"}
        pretraining = {"recipe": recipe, "steps": steps, "final_loss": 0.1, "seconds": 60.0}
    metrics = {"overall_accuracy": oa, "average_accuracy": oa, "kappa": oa}
    return {
        "evaluated_on": "validation",
        "seed": seed,
        "pretraining": pretraining,
        "steps": {"fine_tune": 500},
        "metrics": metrics,
    }


def test_maskedsst_choice_summary_pairs_the_gain_over_scratch_by_seed(tmp_path):
    records = [_record(0, 0.70, None), _record(1, 0.74, None)]
    records += [_record(s, oa, 4800) for s, oa in ((0, 0.72), (1, 0.78), (2, 0.90))]
    for n, record in enumerate(records):
        (tmp_path / f"r{n}.json").write_text(json.dumps(record))
    done = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--maskedsst-choices", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stdout.split("\n\n")[1].splitlines()
    # scratch: mean of 70 and 74, sample std 2.83
    scratch = " | ".join(["72.00 ± 2.83"] * 3)
    assert summary[2] == f"| tiles | scratch | - | - | - | 0,1 | {scratch} | - |"
    # pre-trained: mean of 72, 78, 90 = 80, sample std sqrt(168 / 2) = 9.17; the gain
    # is over the two seeds scratch has: (2 + 4) / 2
    pretrained = " | ".join(["80.00 ± 9.17"] * 3)
    choice = "| tiles | pre-trained | visible | tube | 4800 | 0,1,2"
    assert summary[3] == f"{choice} | {pretrained} | +3.00 (n = 2) |"
