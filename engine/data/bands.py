"""Band plan: which raster bands a model reads, and how they become the model's bands.

One pure function, :func:`plan_bands`, used by the engine, the Processing algorithm and
the dock, so all three say and do the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BandMismatchError
from .raster import BandInfo

if TYPE_CHECKING:
    from ..metadata import ModelMetadata

WAVELENGTH_TOLERANCE_NM = 5.0
STRICT, SELECT, RESAMPLE = "strict", "select", "resample"
BAND_MATCHING = (STRICT, SELECT, RESAMPLE)
IDENTITY = "identity"
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_GAUSS_REACH = 3.0  # sigmas: beyond this a raster band gets no weight (and is not read)


@dataclass(frozen=True)
class BandPlan:
    """How raster bands become the model's bands.

    Attributes:
        kind: ``identity`` (read as is), ``select`` (a subset) or ``resample``.
        indices: 0-based positions, in the raster's band description, of the bands to read.
        weights: (model bands, read bands) matrix for ``resample``; None otherwise (the
            read bands are the model's bands, in order).
        description: one line for people, e.g. "uses 200 of the raster's 224 bands".
    """

    kind: str
    indices: tuple[int, ...]
    weights: np.ndarray | None
    description: str


def plan_bands(
    raster: BandInfo, model: ModelMetadata, raster_name: str, mode: str = SELECT
) -> BandPlan:
    """Plan the raster bands ``model`` reads; raises :class:`BandMismatchError` when none fits.

    Exact match (band list the model records, else the bands not flagged bad, with matching
    count and wavelengths within 5 nm) is used as is. Otherwise, with wavelengths on both
    sides: ``select`` picks the raster band nearest each model wavelength; ``resample``
    also resamples spectrally when the raster covers the model's range (Gaussian response
    from the model's FWHM, else linear interpolation; bad bands never weigh).
    """
    if mode not in BAND_MATCHING:
        raise BandMismatchError(f"band matching must be one of {', '.join(BAND_MATCHING)}")
    try:
        return _identity(raster, model, raster_name)
    except BandMismatchError as exc:
        both = model.wavelengths_nm is not None and raster.wavelengths_nm is not None
        if mode == STRICT or not both or not any(not bad for bad in raster.bad):
            raise
        mismatch = str(exc) if raster.good().count == model.num_bands else None
    good = [i for i, bad in enumerate(raster.bad) if not bad]
    waves = np.asarray(raster.wavelengths_nm, dtype=float)[good]
    target = np.asarray(model.wavelengths_nm, dtype=float)
    distance = np.abs(target[:, None] - waves[None, :])
    nearest = distance.argmin(axis=1)
    missing = distance.min(axis=1) > WAVELENGTH_TOLERANCE_NM
    for i in set(nearest.tolist()):  # a raster band serves one model band: the closest
        users = np.flatnonzero(nearest == i)
        missing[users[users != users[distance[users, i].argmin()]]] = True
    if not missing.any():
        indices = tuple(good[i] for i in nearest)
        return BandPlan(
            SELECT, indices, None, f"uses {len(indices)} of the raster's {raster.count} bands"
        )
    covered = waves.min() <= target.min() + WAVELENGTH_TOLERANCE_NM and (
        waves.max() >= target.max() - WAVELENGTH_TOLERANCE_NM
    )
    if mode == RESAMPLE and covered:
        return _resample(raster, good, waves, target, model.fwhm_nm)
    hint = "; band matching 'resample' would interpolate them" if covered else ""
    raise BandMismatchError(
        _missing_message(target[missing], model, raster_name)
        + (hint if mode == SELECT else "")
        + (f" ({mismatch})" if mismatch else "")
    )


def _identity(raster: BandInfo, model: ModelMetadata, raster_name: str) -> BandPlan:
    """The bands read as they are: the model's listed band numbers, else the good bands."""
    info, indices = _listed_or_good(raster, model, raster_name)
    if info.count != model.num_bands:
        if raster.count == model.num_bands:
            bad = raster.bad.index(True)
            raise BandMismatchError(
                f"band {raster.numbers[bad]} ({raster.names[bad]}) of {raster_name} is "
                f"flagged bad in its ENVI header (bbl) but model {model.model_id} needs all "
                f"{model.num_bands} bands"
            )
        flagged = raster.count - info.count
        raise BandMismatchError(
            f"model {model.model_id} expects {model.num_bands} bands but {raster_name} has "
            f"{info.count}" + (f" good bands ({flagged} flagged bad in bbl)" if flagged else "")
        )
    if model.wavelengths_nm and info.wavelengths_nm:
        diff = np.abs(np.asarray(model.wavelengths_nm) - np.asarray(info.wavelengths_nm))
        worst = int(diff.argmax())
        if diff[worst] > WAVELENGTH_TOLERANCE_NM:
            raise BandMismatchError(
                f"band {info.numbers[worst]} of {raster_name} is at "
                f"{info.wavelengths_nm[worst]:.1f} nm but model {model.model_id} expects "
                f"{model.wavelengths_nm[worst]:.1f} nm (tolerance {WAVELENGTH_TOLERANCE_NM:g} nm)"
            )
    if len(indices) == raster.count:
        description = f"uses all {raster.count} bands of the raster"
    else:
        description = f"uses {len(indices)} of the raster's {raster.count} bands"
    return BandPlan(IDENTITY, indices, None, description)


def _listed_or_good(
    raster: BandInfo, model: ModelMetadata, raster_name: str
) -> tuple[BandInfo, tuple[int, ...]]:
    if model.raster_bands is None:
        indices = tuple(i for i, bad in enumerate(raster.bad) if not bad)
        return raster.subset(indices), indices
    if raster.count != model.raster_band_count or not set(model.raster_bands) <= set(
        raster.numbers
    ):
        raise BandMismatchError(
            f"model {model.model_id} reads {model.num_bands} of the {model.raster_band_count} "
            f"bands of its training rasters, but {raster_name} has {raster.count} bands"
        )
    indices = tuple(raster.numbers.index(n) for n in model.raster_bands)
    return raster.subset(indices), indices


def _resample(
    raster: BandInfo,
    good: list[int],
    waves: np.ndarray,
    target: np.ndarray,
    fwhm: tuple[float, ...] | None,
) -> BandPlan:
    """Weights from the good raster bands to each model band; only bands that weigh are read."""
    full = np.zeros((target.size, waves.size))
    for j, centre in enumerate(target):
        gauss = _gaussian(waves, centre, fwhm[j]) if fwhm else None
        full[j] = gauss if gauss is not None else linear_weights(waves, centre)
    used = np.flatnonzero(full.any(axis=0))
    indices = tuple(good[i] for i in used)
    return BandPlan(
        RESAMPLE,
        indices,
        full[:, used].astype(np.float32),
        f"resamples {raster.count} → {target.size} bands",
    )


def _gaussian(waves: np.ndarray, centre: float, fwhm: float) -> np.ndarray | None:
    """Gaussian spectral response at ``waves``, cut at 3 sigma, summing to 1; None when no
    raster band falls within reach (the response is narrower than the raster's sampling)."""
    sigma = fwhm * _FWHM_TO_SIGMA
    if sigma <= 0:
        return None
    offset = (waves - centre) / sigma
    weights = np.where(np.abs(offset) <= _GAUSS_REACH, np.exp(-0.5 * offset**2), 0.0)
    if np.count_nonzero(weights) < 2 and np.abs(offset).min() > 1e-9:
        return None  # one distant sample is no response: interpolate instead
    return weights / weights.sum()


def linear_weights(waves: np.ndarray, centre: float) -> np.ndarray:
    """Linear interpolation weights at ``centre`` between the two bracketing samples
    (the nearest sample alone when ``centre`` lies on one or outside the range)."""
    weights = np.zeros(waves.size)
    order = np.argsort(waves)
    sorted_waves = waves[order]
    right = int(np.searchsorted(sorted_waves, centre))
    if right == 0 or right == waves.size or sorted_waves[right] == centre:
        nearest = int(np.abs(waves - centre).argmin())
        weights[nearest] = 1.0
        return weights
    lo, hi = sorted_waves[right - 1], sorted_waves[right]
    t = (centre - lo) / (hi - lo)
    weights[order[right - 1]] = 1.0 - t
    weights[order[right]] = t
    return weights


def _missing_message(missing: np.ndarray, model: ModelMetadata, raster_name: str) -> str:
    shown = ", ".join(f"{w:.1f}" for w in missing[:8]) + (", ..." if missing.size > 8 else "")
    return (
        f"{raster_name} has no good band within {WAVELENGTH_TOLERANCE_NM:g} nm of "
        f"{missing.size} wavelengths model {model.model_id} needs: {shown} nm"
    )
