"""Dihedral augmentation of training patches, against hand-written index formulas."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import TrainingRecipe
from engine.training.augment import apply_dihedral, dihedral_codes

P = 5


def _by_formula(patch: np.ndarray, code: int) -> np.ndarray:
    """The symmetry written out pixel by pixel: quarter turns (counter-clockwise, as the
    array is printed), then a transpose for codes 4-7."""
    out = np.empty_like(patch)
    for i in range(P):
        for j in range(P):
            a, b = i, j
            if code >= 4:
                a, b = b, a
            for _ in range(code % 4):  # one turn: out[a, b] = in[b, P - 1 - a]
                a, b = b, P - 1 - a
            out[:, i, j] = patch[:, a, b]
    return out


def test_each_code_is_its_symmetry_and_keeps_the_centre():
    patches = np.arange(8 * 3 * P * P, dtype=np.float32).reshape(8, 3, P, P)
    codes = np.arange(8)
    turned = apply_dihedral(patches, codes)
    for k in range(8):
        np.testing.assert_array_equal(turned[k], _by_formula(patches[k], k), err_msg=str(k))
        np.testing.assert_array_equal(turned[k, :, P // 2, P // 2], patches[k, :, P // 2, P // 2])
    flat = {turned[k, 0].tobytes() for k in range(8)}
    assert len({_by_formula(patches[0], k)[0].tobytes() for k in range(8)}) == 8
    assert len(flat) == 8  # each sample got a different transform of a different patch


def test_the_eight_transforms_are_distinct_and_identity_is_code_zero():
    patch = np.random.default_rng(0).random((1, 2, P, P)).astype(np.float32)
    images = [apply_dihedral(patch, np.array([k]))[0].tobytes() for k in range(8)]
    assert len(set(images)) == 8
    assert images[0] == patch[0].tobytes()


def test_codes_depend_only_on_seed_and_step():
    a = dihedral_codes(3, 17, 1000)
    assert np.array_equal(a, dihedral_codes(3, 17, 1000))
    assert not np.array_equal(a, dihedral_codes(3, 18, 1000))
    assert set(np.unique(a)) == set(range(8))


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="augment"):
        TrainingRecipe(augment="mixup")  # type: ignore[arg-type]
