"""Optical-flow slice morphing: the classical ``flow`` method and the motion features of the
learned ``hrinet-flow`` model. NumPy and OpenCV only (no torch).

Anatomy moves from slice to slice. For a pair of known slices ``k1`` (fraction 0) and ``k2``
(fraction 1) we estimate dense in-plane motion both ways with OpenCV's DIS optical flow
(Kroeger et al. 2016: coarse-to-fine patch search plus variational refinement; fast, robust on
low-texture soft tissue, maintained in OpenCV's core video module). DIS reads 8-bit images, so HU
are mapped linearly from [-1024, 1024] (air to dense bone: every tissue edge keeps contrast). The
slice at fraction ``t`` is found by backward warping along the linear-motion approximation of
Super SloMo (Jiang et al. 2018)::

    F_t->1 = -(1 - t) t F_1->2 + t^2 F_2->1          F_t->2 = (1 - t)^2 F_1->2 - t (1 - t) F_2->1
    flow(t) = (1 - t) * warp(k1, F_t->1) + t * warp(k2, F_t->2)

At t = 0 both flows vanish, so known slices are reproduced exactly. The same trajectories,
extended through the neighbouring pairs' flows, give motion-compensated samples of the context
slices ``k0`` and ``k3`` (:func:`trajectory_samples`); the learned model refines from those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hrinet.core.errors import HRINetError
from hrinet.methods.classical import bspline3
from hrinet.methods.registry import Interpolator, register_method

#: HU mapped to 0..255 for the flow estimator.
FLOW_HU_WINDOW = (-1024.0, 1024.0)
#: Smaller slices are padded (edges replicated) to this size for the flow estimator.
MIN_FLOW_SIZE = 32
#: OpenCV threads (None: one per CPU; 0: no thread pool). Training's data workers set 0: they
#: run side by side, and a pool's threads still alive when a worker exits abort it.
CV_THREADS = None


def _cv2():
    try:
        import cv2  # optional: only this method and the learned default need OpenCV
    except ImportError:  # pragma: no cover - exercised only where OpenCV is missing
        raise HRINetError("the flow method needs OpenCV; install opencv-python-headless "
                          "(pip install opencv-python-headless)") from None
    cv2.setNumThreads(max(1, cv2.getNumberOfCPUs()) if CV_THREADS is None else CV_THREADS)
    return cv2


def _to8(hu: np.ndarray) -> np.ndarray:
    lo, hi = FLOW_HU_WINDOW
    return np.clip((hu - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def estimate_flow(src_hu: np.ndarray, dst_hu: np.ndarray) -> np.ndarray:
    """Dense flow ``F`` with ``src(p) ~ dst(p + F(p))``: ``(y, x, 2)`` float32, (dx, dy)."""
    cv2 = _cv2()
    h, w = src_hu.shape
    a, b = _to8(src_hu), _to8(dst_hu)
    if h < MIN_FLOW_SIZE or w < MIN_FLOW_SIZE:  # DIS's pyramid fails (even crashes) below it
        pad = ((0, max(0, MIN_FLOW_SIZE - h)), (0, max(0, MIN_FLOW_SIZE - w)))
        a, b = np.pad(a, pad, mode="edge"), np.pad(b, pad, mode="edge")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return np.ascontiguousarray(dis.calc(a, b, None)[:h, :w])


def _grid(h: int, w: int):
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx, gy


def warp(image: np.ndarray, flow: np.ndarray, grid=None) -> np.ndarray:
    """``image(p + flow(p))``, bilinear, edges replicated (works on (y, x) and (y, x, c))."""
    cv2 = _cv2()
    h, w = image.shape[:2]
    gx, gy = grid if grid is not None else _grid(h, w)
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), gx + flow[..., 0],
                     gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def intermediate_flows(t: float, f12: np.ndarray, f21: np.ndarray):
    """Flows from the slice at fraction ``t`` to ``k1`` and to ``k2`` (Super SloMo approx.)."""
    ft1 = (-(1 - t) * t) * f12 + (t * t) * f21
    ft2 = ((1 - t) ** 2) * f12 - (t * (1 - t)) * f21
    return ft1, ft2


@dataclass
class PairFlows:
    """Flows of one known pair and of its neighbours (None where the volume ends)."""

    f12: np.ndarray  # k1 -> k2
    f21: np.ndarray  # k2 -> k1
    f10: Optional[np.ndarray] = None  # k1 -> k0
    f23: Optional[np.ndarray] = None  # k2 -> k3


def _warped_pair(k1: np.ndarray, k2: np.ndarray, flows: PairFlows, t: float, grid):
    """``k1`` and ``k2`` warped to fraction ``t``, with the intermediate flows used."""
    ft1, ft2 = intermediate_flows(t, flows.f12, flows.f21)
    return warp(k1, ft1, grid), warp(k2, ft2, grid), ft1, ft2


def trajectory_samples(k0: Optional[np.ndarray], k1: np.ndarray, k2: np.ndarray,
                       k3: Optional[np.ndarray], flows: PairFlows, t: float,
                       grid=None) -> np.ndarray:
    """The four known slices sampled along the motion trajectories through fraction ``t``.

    Returns ``(4, y, x)`` float32: ``k0, k1, k2, k3`` each warped to the target position (a
    missing context slice repeats its neighbour's sample). ``grid``: :func:`_grid` of the slice
    shape, to reuse across calls.
    """
    grid = grid if grid is not None else _grid(*k1.shape)
    w1, w2, ft1, ft2 = _warped_pair(k1, k2, flows, t, grid)
    w0 = w1 if k0 is None or flows.f10 is None else warp(k0, ft1 + warp(flows.f10, ft1, grid),
                                                          grid)
    w3 = w2 if k3 is None or flows.f23 is None else warp(k3, ft2 + warp(flows.f23, ft2, grid),
                                                          grid)
    return np.stack([w0, w1, w2, w3])


def flow_blend(w1: np.ndarray, w2: np.ndarray, t: float) -> np.ndarray:
    """``(1 - t) w1 + t w2`` in float32 arithmetic throughout (as the learned model computes
    it, so that its untrained output equals this method's bit for bit)."""
    t32 = np.float32(t)
    return (np.float32(1) - t32) * w1 + t32 * w2


def keys_weights(t: float) -> np.ndarray:
    """Keys' cubic convolution (a = -0.5, Catmull-Rom) weights of slices at -1, 0, 1, 2."""
    t2, t3 = t * t, t * t * t
    return np.array([(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2,
                     (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2], dtype=np.float32)


#: Pole of the cubic B-spline prefilter (Unser 1999): the cardinal cubic spline's weights decay
#: as ``|z|^d`` with the distance ``d`` in slices.
_SPLINE_POLE = 3 ** 0.5 - 2


def spline_weights(t: float) -> np.ndarray:
    """Weights of the slices at -2..3 for fraction ``t`` of the interpolating cubic B-spline
    (the ``cubic`` method), its cardinal kernel truncated to six slices and renormalised.

    The ``cubic`` method's prefilter reaches the whole volume; six slices carry all but ~1% of
    its weight (0.268^3), and on the validation chest at x2 they score as it does (49.83 vs
    49.84 dB) where Keys' four-slice cubic loses 0.76 dB: overlapping reconstructions are
    band-limited along z, and there the longer kernel is what wins.

    Example:
        >>> w = spline_weights(0.0)
        >>> [round(float(v), 6) for v in w]
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    """

    z = _SPLINE_POLE
    k = np.arange(-24, 25)
    coeff = (-6 * z / (1 - z * z)) * z ** np.abs(k)  # prefilter impulse response
    d = float(t) - np.arange(-2, 4)
    w = (coeff[None, :] * bspline3(d[:, None] - k[None, :])).sum(1)
    w[np.abs(w) < 1e-9] = 0.0  # exact zeros at whole fractions: the spline interpolates
    return (w / w.sum()).astype(np.float32)


def plain_estimates(k0: Optional[np.ndarray], k1: np.ndarray, k2: np.ndarray,
                    k3: Optional[np.ndarray], t: float, far=None) -> np.ndarray:
    """Motion-free estimates at fraction ``t``: ``(2, y, x)``, the linear blend and Keys'
    4-slice cubic; with ``far = (k_-1, k4)`` (either may be None) also the 6-slice cubic spline
    (:func:`spline_weights`), ``(3, y, x)``. A missing slice repeats its neighbour."""
    k0 = k1 if k0 is None else k0
    k3 = k2 if k3 is None else k3
    w = keys_weights(t)
    cubic = w[0] * k0 + w[1] * k1 + w[2] * k2 + w[3] * k3
    out = [(1 - t) * k1 + t * k2, cubic]
    if far is not None:
        km1 = k0 if far[0] is None else far[0]
        k4 = k3 if far[1] is None else far[1]
        s = spline_weights(t)
        out.append(s[0] * km1 + s[1] * k0 + s[2] * k1 + s[3] * k2 + s[4] * k3 + s[5] * k4)
    return np.stack(out).astype(np.float32)


#: :func:`z_roughness` where it cannot be measured (fewer than three known slices): the typical
#: value of thin slices sampled far apart, the input the model saw most.
ROUGHNESS_UNKNOWN = 2.0


def z_roughness(slices: Sequence[Optional[np.ndarray]], step: int = 2) -> float:
    """How rough the known slices are along z: ``E|second difference|^2 / E|first difference|^2``
    over the slices present (in order; None where a volume ends), HU clipped to the flow window,
    every ``step``-th pixel (the statistic is a mean over pixels: a sub-grid estimates it).

    About 3 for slices that share nothing (white noise), about 2 for thin slices sampled far
    apart, and lower for band-limited input such as overlapping reconstructions or slabs, where
    the smooth cubic spline is what wins (decimated x2: 1.42-1.53 on the three overlapping
    volumes, 1.94-2.37 on the seven others). Measured on six known slices, whole slices mostly
    tell the two apart (1.31-1.67 against 1.63-2.47, 10-90% of each volume's groups) where 128^2
    patches do not (1.14-2.14 against 1.32-2.60): ``benchmarks/bench_x2_inputs.py``.

    Example:
        >>> ramp = [np.full((4, 4), 10.0 * i) for i in range(6)]  # perfectly smooth
        >>> z_roughness(ramp)
        0.0
    """
    present = [np.clip(s[::step, ::step], *FLOW_HU_WINDOW).astype(np.float32)
               for s in slices if s is not None]
    if len(present) < 3:
        return ROUGHNESS_UNKNOWN
    stack = np.stack(present)
    d1 = np.diff(stack, axis=0)
    e1 = float(np.mean(d1 * d1))
    if e1 < 1e-6:
        return ROUGHNESS_UNKNOWN
    d2 = np.diff(d1, axis=0)
    return float(np.mean(d2 * d2)) / e1


class WindowFlows:
    """Flows between consecutive slices of a window, each computed once when first needed."""

    def __init__(self, window: np.ndarray):
        self.window = window
        #: Pixel coordinate grid of the window's slices, shared by every warp of the window.
        self.grid = _grid(*window.shape[1:])
        self._fwd: dict = {}
        self._bwd: dict = {}
        self._rough: dict = {}

    def forward(self, i: int) -> np.ndarray:
        if i not in self._fwd:
            self._fwd[i] = estimate_flow(self.window[i], self.window[i + 1])
        return self._fwd[i]

    def backward(self, i: int) -> np.ndarray:
        if i not in self._bwd:
            self._bwd[i] = estimate_flow(self.window[i + 1], self.window[i])
        return self._bwd[i]

    def pair(self, p: int, context: bool = True) -> PairFlows:
        n = len(self.window)
        return PairFlows(self.forward(p), self.backward(p),
                         self.backward(p - 1) if context and p >= 1 else None,
                         self.forward(p + 1) if context and p + 2 < n else None)

    def context(self, p: int):
        n = len(self.window)
        return (self.window[p - 1] if p >= 1 else None, self.window[p], self.window[p + 1],
                self.window[p + 2] if p + 2 < n else None)

    def far(self, p: int):
        """The slices two before and two after pair ``p`` (None past the window's ends)."""
        n = len(self.window)
        return (self.window[p - 2] if p >= 2 else None,
                self.window[p + 3] if p + 3 < n else None)

    def roughness(self, p: int) -> float:
        """:func:`z_roughness` of the six known slices around pair ``p``, once per pair."""
        if p not in self._rough:
            km1, k4 = self.far(p)
            self._rough[p] = z_roughness([km1, *self.context(p), k4])
        return self._rough[p]


class FlowInterpolator:
    """Optical-flow slice morphing between each pair of known slices (classical, no training)."""

    name = "flow"
    halo = 0

    def interpolate(self, window: np.ndarray, pairs: Sequence[int],
                    fractions: Sequence[float]) -> np.ndarray:
        flows = WindowFlows(window)
        out = np.empty((len(pairs), len(fractions)) + window.shape[1:], dtype=np.float32)
        for i, p in enumerate(pairs):
            f = flows.pair(p, context=False)
            for j, t in enumerate(fractions):
                w1, w2, _, _ = _warped_pair(window[p], window[p + 1], f, t, flows.grid)
                out[i, j] = flow_blend(w1, w2, t)
        return out


def motion_features(flows: WindowFlows, p: int, t: float, spline: bool = False) -> np.ndarray:
    """``(6, y, x)`` for pair ``p`` of ``flows.window`` at fraction ``t``: the
    :func:`trajectory_samples` then the :func:`plain_estimates` (``(7, y, x)`` with ``spline``:
    the 6-slice cubic spline last)."""
    k0, k1, k2, k3 = flows.context(p)
    return np.concatenate([trajectory_samples(k0, k1, k2, k3, flows.pair(p), t, flows.grid),
                           plain_estimates(k0, k1, k2, k3, t,
                                           flows.far(p) if spline else None)])


@register_method("flow")
def _flow(**_options) -> Interpolator:
    return FlowInterpolator()
