"""Dense tile models (MaskedSST kind): overlapping tiles on a raster-anchored grid, blended.

The oracle in these tests is computed independently of the engine: the whole raster is
normalised, padded with ``np.pad(mode="symmetric")`` and run tile by tile over the global
grid with a plain loop and its own Hann weights.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from dense_model import write_dense_model
from helpers import (
    REPO,
    WAVELENGTHS,
    edit_model_metadata,
    read_raster,
    synthetic_cube,
    write_raster,
)

from engine.data.normalization import MinMaxNormalization, StandardNormalization
from engine.errors import InputDataError, ModelMetadataError
from engine.infer.classify import TiledClassifier, classify_raster
from engine.infer.model import OnnxClassifier
from engine.infer.predictors import CentrePixelPredictor, DenseTilePredictor, tile_starts
from engine.metadata import CENTRE, DENSE

T, STRIDE, CLASSES = 8, 4, 3
SEED = 4  # weights of the dense model: no near-tie between two classes on the scene
ROWS, COLS = 37, 45  # not multiples of the tile or the stride


def smooth_cube(rows: int = ROWS, cols: int = COLS, bands: int = 12) -> np.ndarray:
    """A scene whose spectra change slowly and smoothly across the pixels."""
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x = np.linspace(0, 1, bands, dtype=np.float32)[:, None, None]
    cube = 2500 + 1200 * np.sin(r / 9 + 3 * x) * np.cos(c / 11 - 2 * x)
    return (cube + 600 * np.sin((r + c) / 15 + 5 * x)).astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Noisy stripes (varied classes) with missing pixels, plus a user mask."""
    folder = tmp_path_factory.mktemp("dense-scene")
    cube = synthetic_cube(ROWS, COLS)[0].astype(np.float32)
    cube += smooth_cube() - 2500
    raw = cube.copy()
    missing = [(0, 0), (3, 4), (7, 8), (8, 7), (20, 44), (36, 13)]  # near window/tile borders
    for r, c in missing:
        cube[:, r, c] = -1
    cube[5, 15, 16] = np.nan
    mask = np.ones((ROWS, COLS), dtype=np.uint8)
    masked = [(4, 4), (12, 12), (16, 16), (36, 0), (30, 31)]
    for r, c in masked:
        mask[r, c] = 0
    return {
        "raw": raw,
        "missing": missing + [(15, 16)],
        "masked": masked,
        "raster": write_raster(folder / "scene.tif", cube, nodata=-1, wavelengths_nm=WAVELENGTHS),
        "mask": write_raster(folder / "mask.tif", mask),
    }


@pytest.fixture(scope="module")
def dense(tmp_path_factory, scene):
    norm = MinMaxNormalization.fit(scene["raw"])
    path = tmp_path_factory.mktemp("dense-model") / "dense.onnx"
    return write_dense_model(path, 12, CLASSES, T, WAVELENGTHS, norm, seed=SEED)


def weights(t: int) -> np.ndarray:
    """Squared Hann window at pixel centres, in both directions."""
    w = np.sin(np.pi * (np.arange(t) + 0.5) / t) ** 4
    return np.outer(w, w)


def oracle_logits(model_path, normalized: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Whole-raster blended logits: np.pad, every tile of the global grid, one at a time."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    _, h, w = normalized.shape
    pad = 2 * T
    padded = np.pad(normalized, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    acc = np.zeros((CLASSES, h + 2 * pad, w + 2 * pad))
    total = np.zeros((h + 2 * pad, w + 2 * pad))
    for r0 in range(pad + stride - T, pad + h, stride):
        for c0 in range(pad + stride - T, pad + w, stride):
            tile = padded[None, :, r0 : r0 + T, c0 : c0 + T].astype(np.float32)
            logits = session.run(["logits"], {"patches": tile})[0][0]
            acc[:, r0 : r0 + T, c0 : c0 + T] += weights(T) * logits
            total[r0 : r0 + T, c0 : c0 + T] += weights(T)
    core = (slice(pad, pad + h), slice(pad, pad + w))
    return acc[(slice(None), *core)] / total[core]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


@pytest.fixture(scope="module")
def expected(dense, scene):
    """Oracle class map and probabilities of the scene with its holes and mask."""
    meta = OnnxClassifier(dense).metadata
    normalized = meta.normalization.apply(scene["raw"], band_axis=0)
    for r, c in scene["missing"]:
        normalized[:, r, c] = meta.normalization.fill
    logits = oracle_logits(dense, normalized)
    probs = _softmax(logits)
    classes = probs.argmax(axis=0) + 1
    for r, c in scene["missing"] + scene["masked"]:
        classes[r, c] = 0
    top2 = np.sort(logits, axis=0)[-2:]
    assert (top2[1] - top2[0])[classes > 0].min() > 1e-4  # no near-tie: a well-defined argmax
    assert len(np.unique(classes)) == CLASSES + 1  # every class appears, and class 0
    return classes, probs


def test_metadata_says_dense_and_the_engine_picks_the_tile_predictor(dense, tiny_model):
    model = OnnxClassifier(dense)
    meta = model.metadata
    assert (meta.prediction, meta.tile_size, meta.patch_size) == (DENSE, T, T)
    predictor = TiledClassifier(model).predictor
    assert isinstance(predictor, DenseTilePredictor) and predictor.halo == T - 1
    # the batch size counts predicted pixels, T * T per tile, at least one tile per call
    assert predictor.batch_size == 1
    assert TiledClassifier(model, batch_size=3 * T * T + 5).predictor.batch_size == 3
    centre = OnnxClassifier(tiny_model.onnx)
    assert centre.metadata.prediction == CENTRE
    assert isinstance(TiledClassifier(centre).predictor, CentrePixelPredictor)


def test_every_raster_pixel_lies_in_the_same_number_of_global_tiles():
    for size in (8, 9, 37, 45):
        starts = tile_starts(0, size, size, T, STRIDE)
        cover = np.zeros(size, dtype=int)
        for s in starts:
            cover[max(s, 0) : s + T] += 1
        assert (cover == T // STRIDE).all(), size
        # a window's starts are the global ones that overlap it
        for lo, n in ((0, 5), (5, 13), (size - 3, 3)):
            part = tile_starts(lo, n, size, T, STRIDE)
            overlap = starts[(starts + T > lo) & (starts < lo + n)]
            assert np.array_equal(part, overlap), (size, lo, n)


def test_blended_map_equals_the_whole_raster_oracle_for_every_layout(
    dense, scene, expected, tmp_path
):
    """Window size, memory budget and batch size never change a pixel (missing data and a
    user mask included); all equal the independent whole-raster computation."""
    want_classes, want_probs = expected
    model = OnnxClassifier(dense)
    layouts = [  # batch_size counts pixels: T * T = 64 per tile
        {"tile_size": 5, "batch_size": 1},
        {"tile_size": 13, "batch_size": 7 * 64},
        {"tile_size": 64, "batch_size": 64 * 64},
        {"memory_budget": 300_000, "batch_size": 3 * 64 + 5},  # 16-pixel windows
    ]
    maps, probs = [], []
    for i, layout in enumerate(layouts):
        out, prob = tmp_path / f"c{i}.tif", tmp_path / f"p{i}.tif"
        TiledClassifier(model, **layout).classify(
            scene["raster"], out, probabilities=prob, mask=scene["mask"]
        )
        maps.append(read_raster(out))
        probs.append(read_raster(prob))
    valid = want_classes > 0
    for i, (classes, p) in enumerate(zip(maps, probs, strict=True)):
        assert np.array_equal(classes, want_classes), layouts[i]
        assert np.allclose(p[:, valid], want_probs[:, valid], atol=1e-5), layouts[i]
        assert (p[:, ~valid] == -1).all()
        assert np.array_equal(p, probs[0]), layouts[i]  # identical, not just close


def steps_by_position(logits: np.ndarray, period: int) -> np.ndarray:
    """Largest change between neighbouring pixels (along rows and columns) at each position
    k in a period: entry k is the step from pixel k to k + 1; the last one crosses the
    border of tiles starting at multiples of ``period``."""
    out = np.zeros(period)
    for axis in (1, 2):
        d = np.moveaxis(np.abs(np.diff(logits, axis=axis)).max(axis=0), axis - 1, 0)
        out = np.maximum(out, [d[k::period].max() for k in range(period)])
    return out


def test_no_seams_on_a_smooth_scene(tmp_path):
    """On a smooth scene the blended logits change no more across tile borders than
    inside tiles, and stay close to the seamless field (the network run over the whole
    padded raster at once); tiles laid side by side, computed here, show both measures
    detect seams."""
    import torch
    from dense_model import build_dense_net

    rows, cols = 40, 48
    cube = smooth_cube(rows, cols)
    raster = write_raster(tmp_path / "smooth.tif", cube, wavelengths_nm=WAVELENGTHS)
    norm = MinMaxNormalization.fit(cube)
    model = write_dense_model(tmp_path / "m.onnx", 12, CLASSES, T, WAVELENGTHS, norm, seed=1)
    prob = tmp_path / "p.tif"
    TiledClassifier(OnnxClassifier(model), tile_size=16).classify(
        raster, tmp_path / "c.tif", probabilities=prob
    )
    blended = np.log(read_raster(prob))  # logits up to a per-pixel constant
    blended -= blended.mean(axis=0)

    normalized = norm.apply(cube, band_axis=0)
    padded = np.pad(normalized, ((0, 0), (T, T), (T, T)), mode="symmetric")
    with torch.no_grad():
        net = build_dense_net(12, CLASSES, seed=1)
        seamless = net(torch.from_numpy(padded[None]))[0].numpy()[:, T:-T, T:-T]
        side_by_side = np.zeros((CLASSES, rows, cols), dtype=np.float32)
        for r in range(0, rows, T):
            for c in range(0, cols, T):
                tile = torch.from_numpy(normalized[None, :, r : r + T, c : c + T])
                side_by_side[:, r : r + T, c : c + T] = net(tile)[0].numpy()
    seamless -= seamless.mean(axis=0)
    side_by_side -= side_by_side.mean(axis=0)

    steps = steps_by_position(side_by_side, T)
    assert steps[-1] > 5 * steps[1:-2].max()  # across borders vs well inside the tiles
    assert np.abs(side_by_side - seamless).max() > 1.0
    steps = steps_by_position(blended, STRIDE)  # blended tiles start every stride
    assert steps[-1] <= 1.1 * steps[:-1].max()
    assert np.abs(blended - seamless).max() < 0.05


def test_dense_model_through_the_cli(dense, scene, tmp_path):
    api = tmp_path / "api.tif"
    classify_raster(scene["raster"], dense, api)
    out = tmp_path / "cli.tif"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "classify", str(scene["raster"])]
        + ["--model", str(dense), "--output", str(out), "--batch-size", "320", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_raster(out), read_raster(api))
    assert out.with_suffix(".qml").is_file()


def test_standardised_model_reads_its_mean_and_std_and_fills_missing_data_with_zero(
    scene, tmp_path
):
    raw = scene["raw"].astype(np.float64)
    mean, std = raw.mean(axis=(1, 2)), raw.std(axis=(1, 2))
    lows, highs = raw.min(axis=(1, 2)), raw.max(axis=(1, 2))
    norm = StandardNormalization.from_moments(lows, highs, mean, std)
    path = write_dense_model(tmp_path / "std.onnx", 12, CLASSES, T, WAVELENGTHS, norm, SEED)
    normalized = ((raw - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
    for r, c in scene["missing"]:
        normalized[:, r, c] = 0.0
    want = oracle_logits(path, normalized).argmax(axis=0) + 1
    for r, c in scene["missing"]:
        want[r, c] = 0
    out = tmp_path / "std.tif"
    report = classify_raster(scene["raster"], path, out)
    assert np.array_equal(read_raster(out), want)
    assert report.warnings == []  # the raster lies within the training range


def test_raster_smaller_than_a_tile_is_refused(dense, tmp_path):
    cube = synthetic_cube(rows=7, cols=20)[0]
    raster = write_raster(tmp_path / "thin.tif", cube, wavelengths_nm=WAVELENGTHS)
    with pytest.raises(InputDataError, match="20x7 pixels.*at least 8x8 \\(its tile size\\)"):
        classify_raster(raster, dense, tmp_path / "out.tif")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda v: v["patch"].update(tile_size=None), "needs a tile_size of at least 1"),
        (lambda v: v["patch"].update(tile_size=0), "needs a tile_size of at least 1"),
        (lambda v: v["patch"].update(size=7), "patch.size 7 must equal the tile_size 8"),
        (lambda v: v["architecture"].update(tile_size=16), "architecture tile_size disagrees"),
        (lambda v: v.update(prediction="sparse"), "unknown prediction 'sparse'"),
        (lambda v: v["bands"].update(spectral_block=5, band_padding=1), "not a multiple"),
        (lambda v: v["bands"].update(spectral_block=4, band_padding=4), "need 0 <= pad < block"),
        (lambda v: v["bands"].update(band_padding=2), "band_padding needs a spectral_block"),
    ],
)
def test_inconsistent_dense_metadata_is_refused(dense, tmp_path, edit, message):
    path = edit_model_metadata(dense, tmp_path / "bad.onnx", edit)
    with pytest.raises(ModelMetadataError, match=message) as exc:
        OnnxClassifier(path)
    assert "\n" not in str(exc.value)


def test_spectral_blocks_and_graph_shapes_are_checked(dense, tiny_model, tmp_path):
    blocks = edit_model_metadata(
        dense, tmp_path / "b.onnx", lambda v: v["bands"].update(spectral_block=5, band_padding=3)
    )
    meta = OnnxClassifier(blocks).metadata
    assert (meta.spectral_block, meta.band_padding) == (5, 3)

    def claim_dense(values):  # a centre-pixel graph (batch, 12, 7, 7) -> (batch, 3)
        values["prediction"] = "dense"
        values["patch"].update(size=7, tile_size=7)
        values["architecture"]["tile_size"] = 7

    wrong = edit_model_metadata(tiny_model.onnx, tmp_path / "w.onnx", claim_dense)
    with pytest.raises(ModelMetadataError, match=r"graph output shape .* \(batch, 3, 7, 7\)"):
        OnnxClassifier(wrong)

    def claim_centre(values):  # a dense graph read as a centre-pixel model
        values["prediction"] = "centre"
        values["patch"].update(size=7, tile_size=None)
        values["architecture"]["patch_size"] = 7

    with pytest.raises(ModelMetadataError, match="graph input shape"):
        OnnxClassifier(edit_model_metadata(dense, tmp_path / "c.onnx", claim_centre))


def test_models_without_a_prediction_key_are_centre_pixel_models(tiny_model, tmp_path):
    def to_schema_1(values):
        values["schema_version"] = 1
        values.pop("prediction", None)
        values["patch"].pop("tile_size", None)
        del values["normalization"]["values"]

    old = OnnxClassifier(edit_model_metadata(tiny_model.onnx, tmp_path / "v1.onnx", to_schema_1))
    assert old.metadata.prediction == CENTRE and old.metadata.tile_size is None
    assert isinstance(TiledClassifier(old).predictor, CentrePixelPredictor)
