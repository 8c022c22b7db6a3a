"""Training-time augmentation of centre-pixel patches."""

from __future__ import annotations

import numpy as np

DIHEDRAL_TRANSFORMS = 8


def dihedral_codes(seed: int, step_index: int, count: int) -> np.ndarray:
    """One symmetry of the square per sample (0-7), drawn from ``(seed, step_index)``.

    Drawing from the step index rather than a running generator keeps a resumed run
    identical to an uninterrupted one.
    """
    return np.random.default_rng([seed, step_index]).integers(0, DIHEDRAL_TRANSFORMS, count)


def apply_dihedral(patches: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Patches (n, bands, p, p) each turned by ``code % 4`` quarter turns, then
    transposed when ``code >= 4``. The centre pixel stays where it is."""
    out = np.empty_like(patches)
    for code in range(DIHEDRAL_TRANSFORMS):
        chosen = codes == code
        if not chosen.any():
            continue
        turned = np.rot90(patches[chosen], code % 4, axes=(2, 3))
        out[chosen] = turned.transpose(0, 1, 3, 2) if code >= 4 else turned
    return out
