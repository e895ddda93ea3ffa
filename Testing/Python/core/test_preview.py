"""``hrinet interpolate --preview``: three reformats in one PNG, at their physical aspect."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli, one_line_error
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.preview import (
    CT_WINDOW,
    GAP,
    LABEL_STRIP,
    coronal,
    display_window,
    preview_image,
    write_preview,
)
from hrinet.core.volume import Volume


def slab_volume(nz=10, ny=30, nx=40, spacing=(1.0, 1.0, 4.0)) -> Volume:
    """Air everywhere, a bright slab in the upper half of the slices (the last ones)."""
    a = np.full((nz, ny, nx), -1000, np.int16)
    a[nz // 2:, 5:25, 5:35] = 800
    return Volume(array=a, spacing=spacing)


def test_each_view_has_its_physical_aspect_and_the_last_slice_is_on_top():
    img = preview_image(slab_volume())
    # axial 30 x 40 at 1 mm; coronal 10 slices x 4 mm = 40 rows by 40; sagittal 40 by 30
    assert img.shape == (40, 40 + GAP + 40 + GAP + 30) and img.dtype == np.uint8
    coronal = img[:, 40 + GAP:80 + GAP]
    assert coronal[2, 20] > 200 and coronal[-3, 20] == 0  # the slab's slices are the top half
    assert img[:, 40:40 + GAP].max() == 0  # views apart


def test_the_written_preview_is_labelled_with_what_made_it_the_window_and_each_view(tmp_path):
    vol = slab_volume()
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(write_preview(vol, tmp_path / "p.png",
                                                                  caption="hrinet x4"))))
    views = preview_image(vol)
    # two label strips above the views, the views themselves unchanged below them
    assert png.shape[0] == views.shape[0] + 2 * LABEL_STRIP
    np.testing.assert_array_equal(png[2 * LABEL_STRIP:, :views.shape[1]], views)
    assert png[:LABEL_STRIP].max() > 128  # the caption line is drawn
    assert png[LABEL_STRIP:2 * LABEL_STRIP, :40].max() > 100  # "axial" above the axial view
    assert png[LABEL_STRIP:2 * LABEL_STRIP, 40 + GAP:80 + GAP].max() > 100  # "coronal ..."


def test_every_figure_shows_the_last_slice_on_top():
    a = np.arange(5)[:, None, None] * np.ones((5, 3, 4))
    assert coronal(a)[0, 0] == 4 and coronal(a)[-1, 0] == 0


def test_ct_is_shown_in_one_window_for_lung_soft_tissue_and_bone_other_data_by_percentiles():
    assert display_window(slab_volume().array) == CT_WINDOW
    mri = np.random.default_rng(0).uniform(100, 900, (8, 16, 16))
    low, high = display_window(mri)
    assert 100 <= low < 120 and 880 < high <= 900


def test_interpolate_writes_the_preview_beside_the_volume(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "thick.nrrd")
    r = cli("interpolate", src, tmp_path / "iso.nrrd", "--method", "cubic", "--factor", "2",
            "--preview", tmp_path / "iso.png")
    assert r.returncode == 0, r.stderr
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "iso.png")))
    assert png.ndim == 2 and png.std() > 10  # an image, not a blank


def test_a_bad_preview_path_is_refused_before_any_work_and_an_existing_one_kept(tmp_path,
                                                                                phantom):
    src = write_volume(phantom, tmp_path / "thick.nrrd")
    one_line_error(cli("interpolate", src, tmp_path / "iso.nrrd", "--method", "cubic",
                       "--preview", tmp_path / "iso.jpg"), "must be a .png file")
    (tmp_path / "old.png").write_bytes(b"the user's picture")
    one_line_error(cli("interpolate", src, tmp_path / "iso.nrrd", "--method", "cubic",
                       "--preview", tmp_path / "old.png"), "exists")
    assert not (tmp_path / "iso.nrrd").exists()
    assert (tmp_path / "old.png").read_bytes() == b"the user's picture"
    with pytest.raises(HRINetError, match="exists"):
        write_preview(slab_volume(), tmp_path / "old.png", overwrite=False)
