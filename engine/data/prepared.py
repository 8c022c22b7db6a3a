"""A scene normalised and padded, ready for patch extraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .normalization import MinMaxNormalization, Normalization
from .patches import PatchExtractor
from .scenes import Scene


@dataclass
class PreparedScene:
    """A scene with its normalisation and a lazy patch extractor over the whole cube."""

    scene: Scene
    normalization: Normalization
    extractor: PatchExtractor

    @classmethod
    def from_scene(
        cls,
        scene: Scene,
        patch_size: int,
        normalization: Normalization | None = None,
    ) -> PreparedScene:
        """Normalise the scene and pad it symmetrically for ``patch_size`` patches.

        Without ``normalization``, min-max statistics are fitted on the scene's valid
        pixels, as FactoFormer does (the method is transductive within a scene); pass a
        model's stored statistics to evaluate that model. No-data pixels get the fill
        spectrum.
        """
        cube = np.moveaxis(scene.cube, -1, 0)  # (bands, rows, cols) view
        if normalization is None:
            normalization = MinMaxNormalization.fit(cube, scene.valid)
        elif normalization.num_bands != scene.num_bands:
            raise ValueError(
                f"normalisation has {normalization.num_bands} bands, scene {scene.num_bands}"
            )
        extractor = normalised_extractor(cube, scene.valid, normalization, patch_size)
        return cls(scene, normalization, extractor)


def normalised_extractor(
    cube: np.ndarray,
    valid: np.ndarray | None,
    normalization: Normalization,
    patch_size: int,
) -> PatchExtractor:
    """Patch extractor over a (bands, rows, cols) cube, normalised, no-data pixels filled.

    Pixels where ``valid`` is False get the normalisation's fill spectrum.
    """
    cube = np.ascontiguousarray(normalization.apply(cube, band_axis=0))
    if valid is not None:
        cube[:, ~valid] = normalization.fill[:, None]
    return PatchExtractor.from_cube(cube, patch_size)
