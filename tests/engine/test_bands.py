"""Band plans (raster bands -> model bands) and classification through them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, edit_model_metadata, read_raster, write_raster
from linear_model import band1_values, write_linear_model

from engine.data.bands import plan_bands
from engine.data.raster import BandInfo
from engine.errors import BandMismatchError
from engine.infer.classify import classify_raster


@dataclass
class _Model:
    """The band fields of ModelMetadata that plan_bands reads."""

    wavelengths_nm: tuple[float, ...] | None
    fwhm_nm: tuple[float, ...] | None = None
    raster_bands: tuple[int, ...] | None = None
    raster_band_count: int | None = None
    model_id: str = "m"

    @property
    def num_bands(self) -> int:
        return len(self.wavelengths_nm) if self.wavelengths_nm else 3


def _raster(wavelengths, bad=(), count=None) -> BandInfo:
    n = count if wavelengths is None else len(wavelengths)
    return BandInfo(
        count=n,
        names=tuple(f"b{i + 1}" for i in range(n)),
        wavelengths_nm=tuple(float(w) for w in wavelengths) if wavelengths else None,
        nodata=(None,) * n,
        numbers=tuple(range(1, n + 1)),
        scale=(1.0,) * n,
        offset=(0.0,) * n,
        bad=tuple(i in bad for i in range(n)),
        masks=("none",) * n,
    )


GRID = [400.0 + 10 * i for i in range(10)]  # 400 .. 490 nm


def test_exact_match_is_used_as_is():
    plan = plan_bands(_raster(GRID), _Model(tuple(w + 3 for w in GRID)), "r.tif")
    assert (plan.kind, plan.indices, plan.weights) == ("identity", tuple(range(10)), None)
    assert plan.description == "uses all 10 bands of the raster"


def test_subset_of_wavelengths_is_selected_in_model_order():
    plan = plan_bands(_raster(GRID), _Model((480.5, 410.0, 452.0)), "r.tif")
    assert (plan.kind, plan.indices, plan.weights) == ("select", (8, 1, 5), None)
    assert plan.description == "uses 3 of the raster's 10 bands"


def test_strict_refuses_a_subset_and_select_refuses_missing_wavelengths():
    with pytest.raises(BandMismatchError, match="expects 3 bands but r.tif has 10"):
        plan_bands(_raster(GRID), _Model((410.0, 450.0, 480.0)), "r.tif", "strict")
    with pytest.raises(BandMismatchError, match=r"of 2 wavelengths .*: 600.0, 700.0 nm$"):
        plan_bands(_raster(GRID), _Model((410.0, 600.0, 700.0)), "r.tif", "resample")
    with pytest.raises(BandMismatchError, match=r"of 1 wavelengths .*: 430.0 nm; band matching"):
        plan_bands(_raster(GRID[::2]), _Model((400.0, 430.0, 460.0)), "r.tif")
    with pytest.raises(BandMismatchError, match=r"of 1 wavelengths .*: 404.0 nm"):
        plan_bands(_raster(GRID), _Model((401.0, 404.0, 460.0)), "r.tif")  # one band, two uses


def test_linear_interpolation_weights_by_hand():
    plan = plan_bands(_raster(GRID[::2]), _Model((408.0, 430.0, 480.0)), "r.tif", "resample")
    assert plan.kind == "resample"
    assert plan.description == "resamples 5 → 3 bands"
    assert plan.indices == (0, 1, 2, 4)  # 400, 420, 440, 480 nm: only bands with weight
    expected = np.array(
        [
            [0.6, 0.4, 0.0, 0.0],  # 408 = 0.6 * 400 + 0.4 * 420
            [0.0, 0.5, 0.5, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(plan.weights, expected, atol=1e-6)


def test_gaussian_weights_from_fwhm_sum_to_one():
    # FWHM 20 nm: sigma = 20 / 2.3548 = 8.4932, 3 sigma = 25.48 nm; the response at 6 nm
    # is exp(-0.5 * (6 / 8.4932)**2) = 0.77916, at 18 nm 0.10584, at 30 nm none (cut).
    grid = [400.0 + 12 * i for i in range(6)]  # 400 .. 460 nm
    model = _Model((418.0, 442.0), fwhm_nm=(20.0, 20.0))
    plan = plan_bands(_raster(grid), model, "r.tif", "resample")
    assert plan.kind == "resample"
    row = dict(zip(plan.indices, plan.weights[0], strict=True))
    raw = {0: 0.10584, 1: 0.77916, 2: 0.77916, 3: 0.10584}
    total = sum(raw.values())
    assert row == pytest.approx({i: v / total for i, v in raw.items()} | {4: 0.0, 5: 0.0}, abs=1e-5)
    np.testing.assert_allclose(plan.weights.sum(axis=1), 1.0, atol=1e-6)


def test_bad_band_never_gets_weight():
    raster = _raster(GRID, bad={1, 2})
    plan = plan_bands(raster, _Model((410.0, 418.0, 460.0)), "r.tif", "resample")
    assert 1 not in plan.indices and 2 not in plan.indices
    row = dict(zip(plan.indices, plan.weights[0], strict=True))
    assert row == pytest.approx({0: 2 / 3, 3: 1 / 3, 6: 0.0})  # 410: from 400 and 430 nm
    with pytest.raises(BandMismatchError, match="has 0 good bands"):
        plan_bands(_raster(GRID, bad=set(range(10))), _Model((410.0,)), "r.tif", "resample")
    gauss = plan_bands(raster, _Model((415.5, 445.0), fwhm_nm=(20.0, 20.0)), "r.tif", "resample")
    assert gauss.kind == "resample"
    assert 1 not in gauss.indices and 2 not in gauss.indices


def test_bands_without_wavelengths_match_by_count_only():
    assert plan_bands(_raster(None, count=3), _Model(None), "r.tif").kind == "identity"
    assert plan_bands(_raster(GRID[:3]), _Model(None), "r.tif").kind == "identity"
    with pytest.raises(BandMismatchError, match="expects 3 bands but r.tif has 4"):
        plan_bands(_raster(None, count=4), _Model(None), "r.tif", "resample")


# Classification with a hand-built model (tests/linear_model.py: band 1 of the centre
# pixel, on [0, 1], decides the class) given an EnMAP-like band set.
MODEL_NM = [452.3, 501.1, 549.6]
CLASSES = 4


@pytest.fixture
def enmap_model(tmp_path) -> Path:
    linear = write_linear_model(tmp_path / "linear.onnx", CLASSES, num_bands=3)

    def edit(values):
        values["bands"]["wavelengths_nm"] = MODEL_NM

    return edit_model_metadata(linear, tmp_path / "enmap.onnx", edit)


def _classes(rows=6, cols=7):
    return (np.arange(rows * cols).reshape(rows, cols) % CLASSES + 1).astype(np.int64)


def test_raster_with_extra_bands_classifies_like_its_band_subset(enmap_model, tmp_path):
    rng = np.random.default_rng(0)
    extra_nm = [430.0, 452.0, 480.0, 501.0, 530.0, 550.0]
    cube = rng.random((6, 6, 7)).astype(np.float32)
    full = write_raster(tmp_path / "extra.tif", cube, wavelengths_nm=extra_nm)
    subset = write_raster(tmp_path / "subset.tif", cube[[1, 3, 5]], wavelengths_nm=MODEL_NM)
    report = classify_raster(full, enmap_model, tmp_path / "a.tif")
    classify_raster(subset, enmap_model, tmp_path / "b.tif")
    assert report.band_plan == "uses 3 of the raster's 6 bands"
    np.testing.assert_array_equal(read_raster(tmp_path / "a.tif"), read_raster(tmp_path / "b.tif"))
    # the oracle: band 2 of the raster (452 nm) decides, not band 1
    expected = np.rint(cube[1] * (CLASSES - 1)).astype(int) + 1
    np.testing.assert_array_equal(read_raster(tmp_path / "a.tif"), expected)


def _coarse_raster(path: Path, classes: np.ndarray) -> Path:
    """Bands at 440 .. 560 nm (20 nm apart) that, resampled to 452.3 nm, give the values
    of ``classes``; no-data at (0, 0) in the 480 nm band and at (1, 1) in the 500 nm band."""
    grid = [440.0 + 20 * i for i in range(7)]
    value = band1_values(classes, CLASSES)
    cube = np.full((7, *classes.shape), 0.25, dtype=np.float32)
    # 452.3 nm = 0.385 * (440 nm) + 0.615 * (460 nm): together they give ``value``
    cube[0] = value - 0.1 * 0.615 / 0.385
    cube[1] = value + 0.1
    cube[2, 0, 0] = -9999  # no-data in a band that gets no weight: the pixel is classified
    cube[3, 1, 1] = -9999  # no-data in a band that weighs: the pixel is missing
    return write_raster(path, cube, nodata=-9999, wavelengths_nm=grid)


def test_raster_at_another_sampling_is_resampled(enmap_model, tmp_path):
    classes = _classes()
    raster = _coarse_raster(tmp_path / "coarse.tif", classes)
    with pytest.raises(BandMismatchError, match=r"452.3, 549.6 nm; band matching 'resample'"):
        classify_raster(raster, enmap_model, tmp_path / "no.tif")
    report = classify_raster(raster, enmap_model, tmp_path / "map.tif", band_matching="resample")
    assert report.band_plan == "resamples 7 → 3 bands"
    expected = classes.copy()
    expected[1, 1] = 0
    np.testing.assert_array_equal(read_raster(tmp_path / "map.tif"), expected)
    assert not (tmp_path / "no.tif").exists()


def test_raster_without_wavelengths_works_by_band_count(enmap_model, tmp_path):
    classes = _classes()
    cube = np.stack([band1_values(classes, CLASSES)] * 3)
    raster = write_raster(tmp_path / "plain.tif", cube)
    report = classify_raster(raster, enmap_model, tmp_path / "map.tif", band_matching="resample")
    assert report.band_plan == "uses all 3 bands of the raster"
    np.testing.assert_array_equal(read_raster(tmp_path / "map.tif"), classes)
    four = write_raster(tmp_path / "four.tif", np.concatenate([cube, cube[:1]]))
    with pytest.raises(BandMismatchError, match="expects 3 bands but four.tif has 4"):
        classify_raster(four, enmap_model, tmp_path / "no.tif")


def test_cli_band_matching(enmap_model, tmp_path):
    raster = _coarse_raster(tmp_path / "coarse.tif", _classes())
    out = tmp_path / "map.tif"
    args = [sys.executable, "-m", "engine", "classify", raster, "--model", enmap_model]
    args += ["--output", out, "--quiet"]
    refused = subprocess.run(list(map(str, args)), capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip().count("\n") == 0 and "452.3, 549.6 nm" in refused.stderr
    args += ["--band-matching", "resample"]
    done = subprocess.run(list(map(str, args)), capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "bands: resamples 7 → 3 bands" in done.stdout and out.exists()
