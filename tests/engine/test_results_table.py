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


def _choice_summary(folder, records: list[dict]) -> list[str]:
    """The lines of the per-choice table of ``--maskedsst-choices`` over ``records``."""
    for n, record in enumerate(records):
        (folder / f"r{n}.json").write_text(json.dumps(record))
    done = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--maskedsst-choices", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split("\n\n")[1].splitlines()


def test_maskedsst_choice_summary_pairs_the_gain_over_scratch_by_seed(tmp_path):
    records = [_record(0, 0.70, None), _record(1, 0.74, None)]
    records += [_record(s, oa, 4800) for s, oa in ((0, 0.72), (1, 0.78), (2, 0.90))]
    summary = _choice_summary(tmp_path, records)
    # scratch: mean of 70 and 74, sample std 2.83
    scratch = " | ".join(["72.00 ± 2.83"] * 3)
    model = "| indian_pines | tiles | paper | min-max | learned"
    assert summary[2] == f"{model} | scratch | - | - | - | 500 | 0,1 | {scratch} | - |"
    # pre-trained: mean of 72, 78, 90 = 80, sample std sqrt(168 / 2) = 9.17; the gain
    # is over the two seeds scratch has: (2 + 4) / 2
    pretrained = " | ".join(["80.00 ± 9.17"] * 3)
    choice = f"{model} | pre-trained | visible | tube | 4800 | 500 | 0,1,2"
    assert summary[3] == f"{choice} | {pretrained} | +3.00 (n = 2) |"


def test_maskedsst_choices_read_the_enmap_validation_tiles_and_pair_by_model(tmp_path):
    """EnMAP runs are evaluated on the test tiles; their validation tiles are the choice's
    figure, and a pre-trained run is paired only with scratch of its own token norm,
    input normalisation and positions."""

    def enmap(
        seed: int, validation: float, norm: bool, pretrained: bool, inputs: str, places=None
    ) -> dict:
        record = _record(seed, 0.10, 600 if pretrained else None)  # 0.10: the test tiles
        metrics = {k: validation for k in ("overall_accuracy", "average_accuracy", "kappa")}
        return record | {
            "evaluated_on": "test",
            "scene": "enmap",
            "validation": metrics,
            "model": {"token_norm": norm} | ({"pos_embedding": places} if places else {}),
            "normalization": inputs,
        }

    records = [enmap(0, 0.60, True, False, "minmax"), enmap(0, 0.70, False, False, "minmax")]
    records += [enmap(0, 0.75, False, True, "minmax"), enmap(1, 0.50, True, False, "minmax")]
    records += [enmap(0, 0.66, False, False, "standard"), enmap(0, 0.76, False, True, "standard")]
    records += [enmap(0, 0.62, True, False, "minmax", "sincos")]
    records += [enmap(0, 0.72, True, True, "minmax", "sincos")]
    summary = _choice_summary(tmp_path, records)[2:]
    paper = " | ".join(["55.00 ± 7.07"] * 3)  # seeds 0 and 1: 60 and 50
    scratch = "scratch | - | - | - | 500"
    learned = "| enmap | tiles | paper | min-max | learned"
    assert summary[0] == f"{learned} | {scratch} | 0,1 | {paper} | - |"
    # sin-cos positions: a row of their own, paired with their own scratch run (62)
    sincos = "| enmap | tiles | paper | min-max | sincos"
    assert summary[1].startswith(f"{sincos} | scratch | - | - | - | 500 | 0 | 62.00")
    assert summary[2].startswith(f"{sincos} | pre-trained | visible | tube | 600 |")
    assert summary[2].endswith("| 72.00 ± 0.00 | +10.00 (n = 1) |")
    none = "| enmap | tiles | none"
    assert summary[3].startswith(
        f"{none} | min-max | learned | scratch | - | - | - | 500 | 0 | 70.00"
    )
    # paired with the scratch run without the norm (70), not the paper's (60)
    pre = "pre-trained | visible | tube | 600 |"
    assert summary[4].startswith(f"{none} | min-max | learned | {pre}")
    assert summary[4].endswith("| 75.00 ± 0.00 | +5.00 (n = 1) |")
    # standardised input: paired with its own scratch run (66), not min-max's (70)
    assert summary[5].startswith(
        f"{none} | standard | learned | scratch | - | - | - | 500 | 0 | 66"
    )
    assert summary[6].startswith(f"{none} | standard | learned | {pre}")
    assert summary[6].endswith("| 76.00 ± 0.00 | +10.00 (n = 1) |")
    assert len(summary) == 7


def _maskedsst_record(seed: int, oa: float, weighting: str | None, steps: int = 500) -> dict:
    recipe = {"max_steps": steps} | ({"pixel_weighting": weighting} if weighting else {})
    metrics = {"overall_accuracy": oa, "average_accuracy": oa, "kappa": oa}
    return {
        "scene": "indian_pines",
        "config": "scratch",
        "seed": seed,
        "metrics": metrics,
        "steps": {"fine_tune": steps},
        "seconds": {"whole_recipe": 100.0},
        "fine_tuning_recipe": recipe,
        "pretraining": None,
    }


def test_maskedsst_rows_name_the_tile_weighted_loss_and_other_step_budgets(tmp_path):
    """Equal pixel weights are the default row; records without a weighting (written
    before the option) or with ``tiles``, and other step budgets, get rows of their own."""
    records = {
        "equal.json": _maskedsst_record(0, 0.80, "equal"),
        "old.json": _maskedsst_record(0, 0.60, None),
        "tiles.json": _maskedsst_record(1, 0.70, "tiles"),
        "long.json": _maskedsst_record(0, 0.50, "equal", steps=1500),
        "plain.json": _maskedsst_record(2, 0.90, "equal") | {"model": {"token_norm": False}},
        "standard.json": _maskedsst_record(1, 0.85, "equal") | {"normalization": "standard"},
        "sincos.json": _maskedsst_record(2, 0.75, "equal") | {"model": {"pos_embedding": "sincos"}},
    }
    (tmp_path / "results").mkdir()
    for file, record in records.items():
        (tmp_path / "results" / file).write_text(json.dumps(record))
    done = subprocess.run(
        [sys.executable, "scripts/baselines_table.py", str(tmp_path / "results")]
        + ["--speed", str(tmp_path / "none"), "--label-efficiency", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    indian_pines = done.stdout.split("Label efficiency")[0].splitlines()
    rows = {line.split(" | ")[0]: line for line in indian_pines if "MaskedSST" in line}
    assert "| 0 | 80.00 ± 0.00 |" in rows["| MaskedSST (scratch)"]
    # the old record and the tiles one share a row: mean of 60 and 70, sample std 7.07
    assert "| 0,1 | 65.00 ± 7.07 |" in rows["| MaskedSST (scratch), tile-weighted loss"]
    assert "| 0 | 50.00 ± 0.00 |" in rows["| MaskedSST (scratch), 1,500 fine-tuning steps"]
    assert "| 2 | 90.00 ± 0.00 |" in rows["| MaskedSST (scratch), no token norm"]
    assert "| 1 | 85.00 ± 0.00 |" in rows["| MaskedSST (scratch), standardised input"]
    assert "| 2 | 75.00 ± 0.00 |" in rows["| MaskedSST (scratch), sin-cos positions"]
