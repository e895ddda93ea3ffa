"""Padding outside the scanner's reconstruction circle: found, hidden from the methods as air,
and written back exactly.

Scanners fill what lies outside the reconstructed field of view with a constant that is no
tissue: -2000, -2048 or -3024 HU, or 0 outside a circle. Interpolating through it (optical flow
warps it bilinearly into the body's edge; a network never trained on it draws a ring there)
invents structure along the circle. So the engine hands every method the known slices with the
padding replaced by air, and afterwards writes the padding value back into each synthesised
slice where the nearer known slice had it.

The padding region of a slice is the part connected to the image border that holds exactly the
padding value. The value is the most common value on the border of the middle slices, taken as
padding where it fills enough of the border (:data:`MIN_BORDER_SHARE`) and is a padding
convention: below air (-1025 HU and lower) or exactly 0 (:data:`IN_RANGE_PADDING`). Air padded as
air needs no care, and a constant tissue value at the border is a synthetic image, not a scanner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from hrinet.core.constants import HU_MIN

#: Padding values inside the range of tissue that scanners write (0 outside the circle).
IN_RANGE_PADDING = (0.0,)
#: The candidate value must fill at least this share of the border pixels of a middle slice.
MIN_BORDER_SHARE = 0.2
#: The value the methods see in the padding region.
AIR = HU_MIN


def _border(slice_: np.ndarray, width: int = 2) -> np.ndarray:
    w = width
    return np.concatenate([slice_[:w].ravel(), slice_[-w:].ravel(),
                           slice_[w:-w, :w].ravel(), slice_[w:-w, -w:].ravel()])


def padding_value(array: np.ndarray) -> Optional[float]:
    """The constant a scanner wrote outside its field of view, or None where there is none.

    Example:
        >>> import numpy as np
        >>> a = np.full((3, 40, 40), -2000, np.int16); a[:, 5:35, 5:35] = 40
        >>> padding_value(a)
        -2000.0
        >>> a[:] = -1024; padding_value(a) is None   # air, not padding
        True
    """
    if array.ndim != 3 or min(array.shape[1:]) < 5:
        return None
    n = array.shape[0]
    votes = {}
    for z in sorted({n // 4, n // 2, (3 * n) // 4}):
        border = _border(np.asarray(array[z]))
        values, counts = np.unique(border, return_counts=True)
        i = int(counts.argmax())
        if counts[i] >= MIN_BORDER_SHARE * border.size:
            votes[float(values[i])] = votes.get(float(values[i]), 0) + 1
    if not votes:
        return None
    value = max(votes, key=votes.get)
    return value if value < HU_MIN or value in IN_RANGE_PADDING else None


def padding_mask(slice_: np.ndarray, value: float) -> np.ndarray:
    """Pixels of a ``(y, x)`` slice that hold ``value`` and are connected to the border."""
    equal = np.asarray(slice_) == value
    if not equal.any():
        return equal
    labels, _ = ndimage.label(equal)
    touching = np.unique(_border(labels, 1))
    touching = touching[touching > 0]
    return np.isin(labels, touching)


@dataclass(frozen=True)
class Padding:
    """The padding of one volume: its value (masks are made per slice, as the engine streams)."""

    value: float

    def masks(self, window: np.ndarray) -> np.ndarray:
        """``(w, y, x)`` boolean masks of a window of known slices."""
        return np.stack([padding_mask(s, self.value) for s in window])

    def hide(self, window: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``window`` with the padding replaced by air (in place; returns it)."""
        window[masks] = AIR
        return window

    def restore(self, synth: np.ndarray, masks: np.ndarray, pairs, fractions) -> np.ndarray:
        """Writes the padding value into ``synth`` ``(pairs, fractions, y, x)`` where the nearer
        known slice of each pair (the lower one at the midpoint) had padding (in place)."""
        for i, p in enumerate(pairs):
            for j, t in enumerate(fractions):
                synth[i, j][masks[p if t <= 0.5 else p + 1]] = self.value
        return synth


def find_padding(array: np.ndarray) -> Optional[Padding]:
    """:class:`Padding` of a ``(z, y, x)`` volume, or None where it has none."""
    value = padding_value(array)
    return None if value is None else Padding(value)
