"""The precision learned methods run in: fp32 reproduces the reference outputs exactly; bf16 is
within its measured tolerance; ``auto`` chooses per device as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cli, one_line_error
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.inference import load_interpolator
from hrinet.learned.precision import (AUTO_BF16_DEVICES, cpu_has_bf16, emulation_warning,
                                      resolve_precision)
from hrinet.methods import create_interpolator
from hrinet.methods.engine import upsample_z

CPU = torch.device("cpu")


def test_fp32_and_bf16_are_taken_as_given_and_auto_per_device(tmp_path):
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(HRINetError, match="precision 'fp8' is not one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", CPU)
    with pytest.raises(HRINetError, match="fp16 runs on a CUDA GPU only, not on cpu; choose bf16"):
        resolve_precision("fp16", CPU)
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"  # resolving needs no GPU
    auto_bf16 = "cpu" in AUTO_BF16_DEVICES and cpu_has_bf16()
    assert resolve_precision("auto", CPU) == ("bf16" if auto_bf16 else "fp32")
    assert resolve_precision("auto", CPU, "acai") == "fp32"  # not measured: stays fp32
    (tmp_path / "with").write_text("flags\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    (tmp_path / "without").write_text("flags\t: fpu sse avx2 avx512f\n")
    assert cpu_has_bf16(tmp_path / "with") and not cpu_has_bf16(tmp_path / "without")
    assert not cpu_has_bf16(tmp_path / "missing")


def test_bf16_asked_for_on_a_cpu_that_only_emulates_it_is_warned_of_in_one_line(tmp_path):
    (tmp_path / "with").write_text("flags\t: fpu sse avx2 avx512f avx512_bf16\n")
    (tmp_path / "without").write_text("flags\t: fpu sse avx2\n")
    slow = emulation_warning("bf16", CPU, tmp_path / "without")
    assert "no native bf16" in slow and "--precision fp32" in slow and "\n" not in slow
    assert emulation_warning("bf16", CPU, tmp_path / "with") is None
    assert emulation_warning("fp32", CPU, tmp_path / "without") is None
    assert emulation_warning("bf16", torch.device("cuda"), tmp_path / "without") is None
    # the commands say it before the work starts, on such a CPU only, never for auto
    from hrinet.cli.describe import model_warnings

    slow_here = not cpu_has_bf16()
    assert model_warnings(load_interpolator(None, device="cpu", precision="bf16")) == \
        ([emulation_warning("bf16", CPU)] if slow_here else [])
    assert model_warnings(load_interpolator(None, device="cpu", precision="auto")) == []
    assert model_warnings(create_interpolator("cubic")) == []


@pytest.fixture(scope="module")
def thick():
    return make_phantom(size=(96, 96, 7), spacing=(1.0, 1.0, 4.0), seed=3)


def test_fp32_gives_the_reference_output_bit_for_bit(thick):
    reference = upsample_z(thick, factor=4, interpolator=load_interpolator(device="cpu",
                                                                           precision="fp32"))
    again = upsample_z(thick, factor=4, interpolator=load_interpolator(device="cpu",
                                                                       precision="fp32"))
    np.testing.assert_array_equal(reference.array, again.array)


def test_bf16_stays_close_to_fp32_on_a_phantom():
    truth = make_phantom(size=(96, 96, 25), spacing=(1.0, 1.0, 1.0), seed=5)
    scores = {}
    for precision in ("fp32", "bf16"):
        interp = load_interpolator(device="cpu", precision=precision)
        scores[precision] = evaluate_volume(truth, "p", [4], ["m"],
                                            interpolators={"m": interp})[0].psnr_hu
    assert abs(scores["bf16"] - scores["fp32"]) < 0.1, scores


def test_the_plan_line_says_which_precision_ran(tmp_path, thick):
    src = write_volume(thick, tmp_path / "t.nrrd")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--factor", "2", "--precision", "bf16")
    assert r.returncode == 0 and "on cpu, bf16" in r.stderr, r.stderr
    # where bf16 is emulated, said once, right after the plan line and before the work
    lines = r.stderr.splitlines()
    slow = [i for i, line in enumerate(lines) if "no native bf16" in line]
    assert len(slow) == (0 if cpu_has_bf16() else 1), r.stderr
    if slow:
        plan = next(i for i, line in enumerate(lines) if "on cpu, bf16" in line)
        assert slow[0] == plan + 1 and lines[slow[0]].startswith("hrinet: warning: ")


@pytest.mark.slow
def test_bf16_costs_under_the_auto_tolerance_on_a_real_ct_crop():
    """The rule auto follows, checked on real CT: a 160^2 crop of 25 slices of the chest
    validation volume, decimated x4, scored in fp32 and bf16."""
    from helpers import shared
    from hrinet.core.io import read_volume
    from hrinet.learned.precision import AUTO_TOLERANCE_DB

    chest = read_volume(shared("chest-lungfcp-1mm.nrrd"))
    n, ny, nx = chest.array.shape
    crop = chest.with_array(chest.array[n // 2 - 12:n // 2 + 13, ny // 2 - 80:ny // 2 + 80,
                                        nx // 2 - 80:nx // 2 + 80].copy())
    scores = {p: evaluate_volume(crop, "crop", [4], ["m"], interpolators={
        "m": load_interpolator(device="cpu", precision=p)})[0].psnr_hu for p in ("fp32", "bf16")}
    assert abs(scores["bf16"] - scores["fp32"]) < AUTO_TOLERANCE_DB, scores


def test_fp16_on_a_cpu_is_a_one_line_error_and_writes_nothing(tmp_path, thick):
    src = tmp_path / "in.nrrd"
    write_volume(thick, src)
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--precision", "fp16", "--device", "cpu")
    one_line_error(r, "precision fp16 runs on a CUDA GPU only, not on cpu; choose bf16 or fp32")
    assert not (tmp_path / "o.nrrd").exists()
