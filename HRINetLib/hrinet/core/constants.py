"""Constants shared by every layer, defined once (no torch, no I/O)."""

from __future__ import annotations

#: The CT intensity range the models and PSNR_HU use (HU): air at -1024 up to dense bone.
HU_MIN, HU_MAX = -1024.0, 3071.0
HU_RANGE = (HU_MIN, HU_MAX)
HU_SCALE = HU_MAX - HU_MIN
#: The soft-tissue window (W400 L40) of SSIM_win, PSNR_win and the window loss (HU).
WINDOW = (-160.0, 240.0)

#: The largest upsampling factor, given or derived from a target spacing: one limit for
#: ``interpolate``, ``batch`` and the Slicer panel (:func:`hrinet.methods.planning.check_factor`).
#: A larger one is a header or a typing error (``--factor 100000`` would write gigabytes).
MAX_FACTOR = 64

#: How far the learned models were measured (docs/results.md, the stress table): factors up to
#: x12 and gaps between known slices up to 60 mm. A plan beyond is run, with a warning.
MEASURED_FACTOR = 12
MEASURED_GAP_MM = 60.0

#: The largest voxel spacing read as real (mm): ten metres. A larger one in a header is a unit
#: or typing error, or too large for ITK, which then reads the axis as 1 mm.
MAX_VOXEL_MM = 1e4

#: Methods that need no weights and no torch.
CLASSICAL_METHODS = ("linear", "cubic", "flow")
#: Arithmetic precision of learned methods: ``auto`` picks per device, ``fp16`` is for CUDA GPUs
#: only (hrinet.learned.precision).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: ``auto`` precision runs bf16 only for variants whose measured cost of it is within this (dB)
#: (:attr:`hrinet.core.variants.Variant.auto_bf16`). The variants themselves, their names
#: included, are defined in :mod:`hrinet.core.variants`.
AUTO_PRECISION_TOLERANCE_DB = 0.02
#: What a learned method may spend on a result: ``standard`` (the default), or ``high``, the
#: model over four mirrored views averaged, about 3x the time (:mod:`hrinet.methods.ensemble`).
QUALITIES = ("standard", "high")
