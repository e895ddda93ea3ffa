"""A confidence map: per voxel of an interpolated volume, the expected absolute error (HU) of
the synthesised value; acquired thin slices are 0.

Nothing here is learned from the model's weights. The map is computed after interpolation from
what inference has: the known slices, the synthesised ones, and three classical candidates at
the same position (linear blend, Keys' cubic, optical-flow morphing). Where the candidates
disagree with the synthesised value, where the forward and backward flows do not undo each other,
where the known slices differ much, where the slice lies mid-gap and where the gap is wide, the
synthesised value is less certain; so is it in lung and bone, where small structures come and go
between slices. A log-linear fit turns these features into a score and a monotone (isotonic)
table maps the score to the mean absolute error measured on the corpus's four validation
series (``confidence_calibration.json`` beside this module, plain JSON, which names what it was
fitted on; ``benchmarks/bench_confidence.py --fit`` remakes it, and scores each series under a
calibration fitted on the others).

The calibration is of the default model's output (``hrinet``). Any method's output can be
scored, but for another method the numbers rank voxels rather than give calibrated HU.

NumPy, SciPy and OpenCV only (no torch), so any method's output can be scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import maximum_filter, uniform_filter

from hrinet.core.constants import HU_RANGE
from hrinet.core.errors import HRINetError
from hrinet.core.geometry import ON_SLICE, grid_fractions, uneven_grid, uneven_positions
from hrinet.core.io.provenance.record import made_by_hrinet
from hrinet.core.volume import Volume
from hrinet.methods.flow import (
    WindowFlows,
    _warped_pair,
    flow_blend,
    plain_estimates,
    warp,
)

#: HU range the features are computed in (the models' range): padding outside the scan circle
#: (-3024) and metal beyond it would only add disagreement that is not an interpolation error.
FEATURE_HU = HU_RANGE
#: In-plane neighbourhood (pixels) the disagreement features are spread over: an error sits
#: beside the edge that causes it.
NEIGHBOURHOOD = 5
#: HU ranges of air, lung and bone: the share of each around a voxel tells the tissue, and
#: with it how much structure can appear between slices (vessels in lung, trabeculae in bone).
TISSUE_HU = ((-1e9, -950.0), (-950.0, -400.0), (300.0, 1e9))
#: Added to every feature before its logarithm (HU, pixels), so that zeros stay finite.
LOG_OFFSET = 5.0
#: The per-voxel features, in the order of :func:`pair_features`' output.
FEATURE_NAMES = ("disagree", "disagree_near", "spread", "flow_inconsistency", "known_difference",
                 "contrast", "mid_gap", "gap_mm", "noise", "d_lin", "d_flow", "d_cubic",
                 "motion", "disagree_far", "known_max", "known_edges", "air_share", "lung_share",
                 "bone_share")
#: Length of the calibration's ``coef``: one per column of :func:`design`.
N_COEF = 20
#: The calibration shipped with the package (JSON; read by :func:`load_calibration`).
CALIBRATION_FILE = Path(__file__).with_name("confidence_calibration.json")


def _clip(a: np.ndarray) -> np.ndarray:
    return np.clip(a, *FEATURE_HU).astype(np.float32, copy=False)


def _gradient_magnitude(a: np.ndarray) -> np.ndarray:
    if min(a.shape) < 2:  # a single row or column has no in-plane gradient across it
        return np.zeros_like(a)
    gy, gx = np.gradient(a)
    return np.hypot(gx, gy)


class PairContext:
    """What the features of every slice synthesised between two known slices share: the known
    slices, the flows both ways and the maps that do not depend on the fraction."""

    def __init__(self, window: np.ndarray, p: int, gap_mm: float,
                 flows: Optional[WindowFlows] = None):
        window = _clip(window)
        self.flows = flows or WindowFlows(window)
        self.known = self.flows.context(p)
        k1, k2 = self.known[1], self.known[2]
        self.pf = pf = self.flows.pair(p, context=False)
        grid = self.flows.grid
        self.fb1 = np.linalg.norm(pf.f12 + warp(pf.f21, pf.f12, grid), axis=-1)
        self.fb2 = np.linalg.norm(pf.f21 + warp(pf.f12, pf.f21, grid), axis=-1)
        diff = np.abs(k2 - k1)
        self.known_mean = uniform_filter(diff, NEIGHBOURHOOD)
        self.known_max = maximum_filter(diff, NEIGHBOURHOOD + 2)
        self.noise = 0.5 * sum(uniform_filter(np.abs(k - uniform_filter(k, 3)), NEIGHBOURHOOD)
                               for k in (k1, k2))
        self.edges = maximum_filter(np.maximum(_gradient_magnitude(k1),
                                               _gradient_magnitude(k2)), NEIGHBOURHOOD)
        self.motion = uniform_filter(np.linalg.norm(pf.f12, axis=-1), NEIGHBOURHOOD)
        self.gap_mm = float(gap_mm)

    def features(self, t: float, synthesised: np.ndarray) -> np.ndarray:
        """Features ``(F, y, x)`` (:data:`FEATURE_NAMES`) of the slice ``synthesised`` at
        fraction ``t``."""
        k0, k1, k2, k3 = self.known
        m = _clip(synthesised)
        lin, cub = plain_estimates(k0, k1, k2, k3, t)
        w1, w2, _, _ = _warped_pair(k1, k2, self.pf, t, self.flows.grid)
        cands = np.stack([m, lin, _clip(cub), flow_blend(w1, w2, t)])
        diffs = np.abs(cands[1:] - m)
        disagree = diffs.max(0)
        out = np.empty((len(FEATURE_NAMES),) + m.shape, dtype=np.float32)
        out[0] = disagree
        out[1] = maximum_filter(disagree, NEIGHBOURHOOD)
        out[2] = uniform_filter(cands.max(0) - cands.min(0), NEIGHBOURHOOD)
        out[3] = uniform_filter((1 - t) * self.fb1 + t * self.fb2, NEIGHBOURHOOD)
        out[4] = self.known_mean
        out[5] = _gradient_magnitude(m)
        out[6] = 4 * t * (1 - t)
        out[7] = self.gap_mm
        out[8] = self.noise
        out[9:12] = diffs
        out[12] = self.motion
        out[13] = maximum_filter(disagree, 2 * NEIGHBOURHOOD + 1)
        out[14] = self.known_max
        out[15] = self.edges
        for c, (lo, hi) in enumerate(TISSUE_HU):
            out[16 + c] = uniform_filter(((m >= lo) & (m < hi)).astype(np.float32),
                                         2 * NEIGHBOURHOOD + 1)
        return out


def pair_features(window: np.ndarray, p: int, fractions: Sequence[float],
                  synthesised: np.ndarray, gap_mm: float,
                  flows: Optional[WindowFlows] = None) -> np.ndarray:
    """Features ``(len(fractions), F, y, x)`` (:data:`FEATURE_NAMES`) of the slices synthesised
    between ``window[p]`` and ``window[p + 1]`` at ``fractions``; ``synthesised`` is
    ``(len(fractions), y, x)``; ``gap_mm`` the distance between the two known slices.

    ``disagree`` is the largest absolute difference between the synthesised value and the
    linear, Keys cubic and flow candidates (``d_lin``, ``d_cubic``, ``d_flow`` each), ``_near``
    and ``_far`` its maximum over a :data:`NEIGHBOURHOOD` square and one twice as wide;
    ``spread`` the range of all four values, averaged locally; ``flow_inconsistency`` how far
    (pixels) a point moved forward and back lands from itself; ``motion`` the flow's length;
    ``known_difference`` and ``known_max`` the local mean and maximum of ``|k2 - k1|``;
    ``known_edges`` the local maximum of the known slices' in-plane gradient, ``contrast`` the
    synthesised slice's; ``noise`` the known slices' local deviation from a 3 x 3 mean;
    ``mid_gap`` is ``4 t (1 - t)``; the shares are those of air, lung and bone HU around the
    voxel (:data:`TISSUE_HU`)."""
    ctx = PairContext(window, p, gap_mm, flows)
    return np.stack([ctx.features(t, synthesised[j]) for j, t in enumerate(fractions)])


def design(features: np.ndarray) -> np.ndarray:
    """The regression inputs from features ``(..., F, y, x)`` -> ``(..., D, y, x)``: a constant,
    the logarithm of each HU and pixel feature (offset by :data:`LOG_OFFSET`; 0.5 pixel for the
    motion), ``mid_gap``, ``log(gap_mm)`` and the tissue shares."""
    f = np.moveaxis(features, -3, 0)
    hu = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 13, 14, 15)
    cols = [np.ones_like(f[0])] + [np.log(f[i] + LOG_OFFSET) for i in hu] + \
        [f[6], np.log(np.maximum(f[7], 1e-3)), np.log(f[12] + 0.5), f[16], f[17], f[18]]
    return np.moveaxis(np.stack(cols), 0, -3).astype(np.float32)


def score(features: np.ndarray, coef: Sequence[float]) -> np.ndarray:
    """The log-linear score ``design(features) @ coef`` (about ``log(|error| + offset)``)."""
    d = design(features)
    c = np.asarray(coef, dtype=np.float32).reshape((-1, 1, 1))
    return (d * c).sum(-3)


def expected_error(features: np.ndarray, calibration: Optional[dict] = None) -> np.ndarray:
    """Expected absolute error (HU) per voxel from features ``(..., F, y, x)``."""
    cal = calibration or load_calibration()
    s = score(features, cal["coef"])
    return np.interp(s, cal["score_knots"], cal["error_hu"]).astype(np.float32)


def load_calibration(path: Optional[Path] = None) -> dict:
    """The calibration: ``coef`` (of :func:`design`), ``score_knots`` and ``error_hu`` (the
    isotonic table), and ``fitted_on`` (what it was made from)."""
    path = Path(path or CALIBRATION_FILE)
    try:
        cal = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HRINetError(f"the confidence calibration {path} cannot be read ({exc}); "
                          "reinstall hrinet") from None
    if len(cal.get("coef", ())) != N_COEF or len(cal.get("score_knots", ())) < 2:
        raise HRINetError(f"the confidence calibration {path} is incomplete; reinstall hrinet")
    return cal


def check_scorable(source: Volume) -> None:
    """Refuse, in one line, a ``source`` that hrinet itself made (an output interpolated again):
    the calibration is of slices synthesised between acquired ones, and such an input's own
    synthesised slices have an error nobody measured, so no honest map of it can be made."""
    earlier = made_by_hrinet(source)
    if earlier:
        raise HRINetError(
            "a confidence map needs acquired slices, but this input was itself interpolated by "
            f"hrinet ({earlier.get('synthesised_count', '?')} of "
            f"{earlier.get('output_slices', '?')} slices synthesised); make the map from the "
            "series it was made from, or leave out --confidence")


def _scored_slices(source: Volume, result: Volume, k: int) -> Tuple[np.ndarray, Dict]:
    """The known slices' positions (mm from the first) and, per pair ``p``, the output slices
    ``[(j, t)]`` synthesised between them at fraction ``t``. A grid point on a known slice is
    that slice (not scored); one past the last slice (uneven gaps: at most half a spacing) is a
    copy of it, scored as the point as far inside the last gap (its difference from the last
    slice is its error). Raises when ``result`` is not ``source`` upsampled by ``k``."""
    n = source.array.shape[0]
    positions = uneven_positions(source.metadata.get("slice_positions_mm"), n)
    step = float(result.spacing[2])
    if positions is None:
        count = (n - 1) * k + 1
        positions = np.arange(n) * float(source.spacing[2])
    else:
        count = uneven_grid(positions, step)
    if result.array.shape != (count,) + source.array.shape[1:]:
        raise HRINetError(f"the result {result.array.shape} is not the x{k} upsampling of "
                          f"{source.array.shape}; give the volume it was made from")
    rel = np.asarray(positions, dtype=np.float64) - float(positions[0])
    per_pair: Dict[int, List[Tuple[int, float]]] = {}
    for j, (p, t) in enumerate(grid_fractions(rel, step, count)):
        if t in (0.0, 1.0):
            i = p + int(t)
            beyond = j * step - rel[i]
            if abs(beyond) <= ON_SLICE * step:
                continue  # a known slice
            t = float(1.0 - beyond / (rel[-1] - rel[-2]))
        per_pair.setdefault(p, []).append((j, t))
    return rel, per_pair


def confidence_map(source: Volume, result: Volume, factor: int,
                   calibration: Optional[dict] = None,
                   progress: Optional[Callable[[int, int], None]] = None) -> Volume:
    """The confidence map of ``result`` (``source`` upsampled by ``factor`` along z, on the
    regular grid, also across uneven gaps): a float32 volume of the result's geometry holding
    the expected absolute error in HU of each voxel; acquired slices kept as they are hold 0
    (calibrated for the default model's output, thin slices: the decimate protocol). Restored
    slab positions (``restored_known``) hold ``|restored - acquired|``, which is not calibrated.
    A ``source`` hrinet made itself is refused (:func:`check_scorable`).

    Also sets ``result.metadata["slice_error_hu"]``: the mean of the map per output slice.
    Working memory is a few slices; the map itself is the only whole-volume array."""
    check_scorable(source)
    src = source.array
    n = src.shape[0]
    k = int(factor)
    rel, per_pair = _scored_slices(source, result, k)
    cal = calibration or load_calibration()
    out = np.zeros(result.array.shape, dtype=np.float32)
    for p in range(n - 1):
        lo, hi = max(0, p - 1), min(n, p + 3)
        ctx = PairContext(src[lo:hi].astype(np.float32), p - lo, float(rel[p + 1] - rel[p]))
        for j, t in per_pair.get(p, []):  # one slice's features at a time: bounded memory
            out[j] = expected_error(ctx.features(t, result.array[j].astype(np.float32)), cal)
        if progress is not None:
            progress(p + 1, n - 1)
    if result.metadata.get("restored_known"):
        for i in range(n):
            out[i * k] = np.abs(_clip(result.array[i * k]) - _clip(src[i]))
    slice_error: List[float] = [float(s.mean()) for s in out]
    result.metadata["slice_error_hu"] = slice_error
    meta: Dict = {"content": "expected absolute error (HU) of the interpolated values"}
    return Volume(array=out, spacing=result.spacing, origin=result.origin,
                  direction=result.direction.copy(), metadata=meta)
