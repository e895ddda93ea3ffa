"""Which axis a volume is made finer along: hrinet fills in between slices (z). A volume whose
coarse axis lies in-plane is refused with what to do; one whose slices are already finer than
its pixels is told there is nothing to do towards isotropy; a factor or finer target is done."""

from __future__ import annotations

from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom
from helpers import cli as run
from helpers import one_line_error as _assert_one_line_error


def test_a_volume_whose_coarse_axis_lies_in_plane_is_refused_not_called_isotropic(tmp_path):
    src = tmp_path / "sagittal.nrrd"  # 5 mm along x, 0.8 mm slices: stored across its slices
    write_volume(make_phantom(size=(16, 32, 32), spacing=(5, 0.8, 0.8)), src)
    for more in ([], ["--spacing", 0.4]):  # the default target (isotropic) or one given
        r = run("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", *more)
        _assert_one_line_error(r, "coarse axis is x (5 mm), not its slice axis z (0.8 mm")
        assert not (tmp_path / "o.nrrd").exists()
    r = run("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--factor", 2)
    assert r.returncode == 0, r.stderr  # a factor given: done as asked, along z


def test_a_volume_finer_along_z_than_in_plane_is_said_so_and_a_target_given_is_done(tmp_path):
    """Slices finer than the pixels (5 x 5 x 1 mm, or a thin overlapping 1 x 1 x 0.4 mm
    series): nothing to do towards isotropy, said so in one line; a finer target is done."""
    for name, spacing, target, factor in (("coarse", (5, 5, 1), 0.2, 5),
                                          ("overlap", (1, 1, 0.4), 0.2, 2)):
        src = tmp_path / f"{name}.nrrd"
        write_volume(make_phantom(size=(16, 16, 12), spacing=spacing), src)
        r = run("interpolate", src, tmp_path / f"{name}-o.nrrd", "--method", "linear")
        _assert_one_line_error(r, f"already finer along z than in-plane (slice spacing "
                                  f"{spacing[2]:g} mm, in-plane {spacing[0]:g} mm)")
        r = run("interpolate", src, tmp_path / f"{name}-o.nrrd", "--method", "linear",
                "--spacing", target)
        assert r.returncode == 0 and f"x{factor} with linear" in r.stdout + r.stderr, r.stderr
    thin = tmp_path / "thin.nrrd"  # 0.7 mm pixels, 1 mm slices: close to isotropic, said so
    write_volume(make_phantom(size=(16, 16, 24), spacing=(0.7, 0.7, 1)), thin)
    r = run("interpolate", thin, tmp_path / "o.nrrd", "--method", "linear")
    _assert_one_line_error(r, "already close to isotropic (slice spacing 1 mm, in-plane 0.7 mm)")
