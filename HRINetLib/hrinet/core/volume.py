"""The library's volume type: a voxel array with its full physical geometry."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Tuple

import numpy as np

Vec3 = Tuple[float, float, float]


@dataclass
class Volume:
    """A 3D scalar image in ITK/LPS conventions.

    Attributes:
        array: voxels indexed ``(z, y, x)``, in the original pixel type.
        spacing: voxel size ``(x, y, z)`` in mm.
        origin: physical position ``(x, y, z)`` of voxel ``(0, 0, 0)`` in LPS mm.
        direction: 3x3 matrix whose columns are the unit directions of the i, j, k axes (LPS).
        metadata: free-form notes carried along (source path, warnings...).
    """

    array: np.ndarray
    spacing: Vec3 = (1.0, 1.0, 1.0)
    origin: Vec3 = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def dtype(self) -> np.dtype:
        """The original pixel type, kept for the output."""
        return self.array.dtype

    @property
    def shape_xyz(self) -> Tuple[int, int, int]:
        """Size as (x, y, z), the order radiologists and ITK report it in."""
        z, y, x = self.array.shape
        return (x, y, z)

    def index_to_physical(self, ijk) -> np.ndarray:
        """Physical LPS position of a continuous index ``(i, j, k)`` = ``(x, y, z)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return np.asarray(self.origin) + self.direction @ (np.asarray(self.spacing) * ijk)

    def with_array(self, array: np.ndarray, spacing: Vec3 | None = None) -> "Volume":
        """A new volume sharing this geometry (optionally another spacing) with ``array``."""
        return replace(self, array=array, spacing=spacing or self.spacing,
                       direction=self.direction.copy(), metadata=dict(self.metadata))


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert float results to ``dtype``: round and clip for integers, plain cast for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def voxel_sha256(array: np.ndarray) -> str:
    """The identity of a volume's voxels, whatever file or machine holds them: sha256 of the
    pixel type, the ``(z, y, x)`` shape and the C-ordered bytes.

    Example:
        >>> voxel_sha256(np.zeros((2, 2, 2), np.int16))[:12]
        '9b5bc1603ec0'
    """
    h = hashlib.sha256(f"{np.dtype(array.dtype).str}|{tuple(array.shape)}|".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def non_finite_counts(array: np.ndarray, chunk: int = 1 << 22) -> tuple:
    """``(NaN count, infinite count)`` of ``array`` (0, 0 for integer arrays), counted in
    chunks so that a large volume needs no full-size mask."""
    if not np.issubdtype(array.dtype, np.inexact):
        return 0, 0
    flat = array.reshape(-1)
    nan = inf = 0
    for s in range(0, flat.size, chunk):
        part = flat[s:s + chunk]
        nan += int(np.count_nonzero(np.isnan(part)))
        inf += int(np.count_nonzero(np.isinf(part)))
    return nan, inf
