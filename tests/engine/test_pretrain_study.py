"""scripts/pretrain_study.py: a fresh checkout fine-tunes from the committed branch store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers import REPO

STUDY = REPO / "scripts" / "pretrain_study.py"


def _study(tmp_path, runs: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(STUDY), "--seed", "0", "--threads", "1", "--quiet"]
    command += ["--recipe", "paper-visible", "--configs", "band", "--max-steps", "2"]
    command += ["--validation", "0.3"]  # 186 evaluated pixels, not the 9,671 test ones
    command += ["--runs", str(tmp_path / runs), "--results", str(tmp_path / f"results-{runs}")]
    command += ["--branch-store", str(tmp_path / "store"), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_a_stored_branch_is_fine_tuned_from_instead_of_pre_trained_again(tmp_path):
    first = _study(tmp_path, "runs-a")
    assert first.returncode == 0, first.stderr
    branch = tmp_path / "runs-a" / "paper-visible-seed0" / "band"
    assert (branch / "encoder.pt").is_file()
    assert not (tmp_path / "store").exists()  # smoke runs (--max-steps) are never kept
    stored = tmp_path / "store" / "paper-visible-seed0" / "band"
    stored.mkdir(parents=True)
    for name in ("encoder.pt", "pretraining.json"):
        shutil.copy2(branch / name, stored / name)

    second = _study(tmp_path, "runs-b")
    assert second.returncode == 0, second.stderr
    assert f"band branch taken from {stored}" in second.stderr
    restored = tmp_path / "runs-b" / "paper-visible-seed0" / "band"
    assert (restored / "encoder.pt").read_bytes() == (stored / "encoder.pt").read_bytes()
    # not pre-trained again: the copy keeps the stored file's time, a new run would not
    assert (restored / "encoder.pt").stat().st_mtime == (stored / "encoder.pt").stat().st_mtime
    result = json.loads(
        (
            tmp_path / "results-runs-b" / "validation" / "paper-visible" / "band-seed0.json"
        ).read_text()
    )
    original = json.loads(
        (
            tmp_path / "results-runs-a" / "validation" / "paper-visible" / "band-seed0.json"
        ).read_text()
    )
    assert result["seconds"]["pretrain_band"] == original["seconds"]["pretrain_band"]
    assert result["metrics"] == original["metrics"]  # the same branch, the same fine-tuning


def _study_module():
    sys.path.insert(0, str(STUDY.parent))
    import pretrain_study

    return pretrain_study


def test_a_partial_state_travels_and_a_finished_branch_replaces_it(tmp_path):
    study = _study_module()
    stored, runs = tmp_path / "store" / "band", tmp_path / "runs" / "band"
    stored.mkdir(parents=True)
    (stored / "state.pt").write_bytes(b"epoch 170")
    assert study.restore_branch(stored, runs)
    assert (runs / "state.pt").read_bytes() == b"epoch 170"
    (runs / "state.pt").write_bytes(b"epoch 171")
    assert not study.restore_branch(stored, runs)  # a run in progress is never overwritten
    assert (runs / "state.pt").read_bytes() == b"epoch 171"

    (runs / "state.pt").unlink()  # the branch finishes: its state gives way to the encoder
    (runs / "encoder.pt").write_bytes(b"weights")
    (runs / "pretraining.json").write_text("{}")
    assert study.keep_branch(runs, stored)
    assert sorted(p.name for p in stored.iterdir()) == ["encoder.pt", "pretraining.json"]
    assert not study.keep_branch(runs, stored)  # kept once
    fresh = tmp_path / "fresh" / "band"
    assert study.restore_branch(stored, fresh)
    assert (fresh / "encoder.pt").read_bytes() == b"weights"


def test_a_damaged_stored_state_is_refused_in_one_line(tmp_path):
    stored = tmp_path / "store" / "paper-visible-seed0" / "band"
    stored.mkdir(parents=True)
    (stored / "state.pt").write_text("not a training state")
    done = _study(tmp_path, "runs")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot resume from ") and "Traceback" not in done.stderr
