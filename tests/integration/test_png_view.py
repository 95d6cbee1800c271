"""test_png_view.py - the PNG view in a mount (-o views=txt,png; README
"The PNG view"): Pillow reads every exact view pixel for pixel equal to the
array; an image edited and saved over NAME.png lands exactly, dtype and
shape kept; a PNG of another size or depth is refused with EINVAL and the
archive is unchanged; other 2-d arrays are read-only heatmaps (0444,
EACCES), monotonic in the values."""
import errno
import io
import os
import stat

import numpy as np
import pytest
from PIL import Image

from writeutil import (Snapshot, check_archive, close_errno, getxattr,
                       make_archive, read)

def images():
    """The same arrays at every call."""
    RNG = np.random.default_rng(7)
    return {
        "gray": RNG.integers(0, 256, (37, 53), dtype=np.uint8),
        "deep": RNG.integers(0, 65536, (19, 23), dtype=np.uint16),
        "deepbe": RNG.integers(0, 65536, (8, 5)).astype(">u2"),
        "rgb": RNG.integers(0, 256, (31, 17, 3), dtype=np.uint8),
        "rgba": RNG.integers(0, 256, (9, 12, 4), dtype=np.uint8),
        "fort": np.asfortranarray(RNG.integers(0, 256, (21, 34), dtype=np.uint8)),
        "heat": np.linspace(-3.0, 5.0, 12 * 20).reshape(12, 20),
        "line": np.arange(5, dtype=np.uint8),
        "cplx": np.ones((3, 3), dtype=complex),
    }


@pytest.fixture(params=["stored", "deflated"])
def archive(tmp_path, request):
    return make_archive(tmp_path / "img.npz", request.param, images())


def pil_array(path):
    """What Pillow reads from path, as numpy (uint16 for 16-bit gray)."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I"):
            return np.array(im).astype(np.uint16), im.mode
        return np.array(im), im.mode


def test_exact_views_read_by_pillow(archive, mount):
    m = mount(archive, "-o", "views=txt,png")
    want = images()
    for name in ("gray", "deep", "deepbe", "rgb", "rgba", "fort"):
        got, mode = pil_array(m / (name + ".png"))
        assert np.array_equal(got, want[name]), name
        assert got.shape == want[name].shape, name
        st = os.stat(m / (name + ".png"))
        assert stat.S_IMODE(st.st_mode) & 0o200, name
        assert st.st_size == len(read(m / (name + ".png")))
    assert not (m / "line.png").exists()
    assert not (m / "cplx.png").exists()
    assert not (mount(archive) / "gray.png").exists()   # default: txt only


def test_heatmap_read_only_and_monotonic(archive, mount):
    m = mount(archive, "-o", "views=txt,png")
    got, mode = pil_array(m / "heat.png")
    assert mode == "L" and got.shape == (12, 20)
    flat = got.ravel()                     # values increase in C order
    assert flat[0] == 0 and flat[-1] == 255
    assert np.all(np.diff(flat.astype(int)) >= 0)
    assert stat.S_IMODE(os.stat(m / "heat.png").st_mode) == 0o444
    with pytest.raises(OSError) as exc:
        os.open(m / "heat.png", os.O_WRONLY)
    assert exc.value.errno == errno.EACCES


def test_edit_saved_by_pillow_lands(archive, mount):
    """Draw into the RGB image with Pillow, save it over rgb.png: the
    array gets exactly the new pixels; nothing else in the archive moves."""
    before = Snapshot(archive)
    m = mount(archive, "-o", "views=txt,png")
    with Image.open(m / "rgb.png") as im:
        im.load()
        im = im.copy()
    im.putpixel((3, 4), (1, 2, 3))
    im.paste((250, 0, 9), (0, 0, 5, 2))
    want = np.array(im)
    im.save(m / "rgb.png")
    got = np.load(m / "rgb.npy")
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    # 16-bit gray, big-endian array: saved as PNG by Pillow (I;16)
    new16 = images()["deepbe"].copy()
    new16[2, 3] = 54321
    buf = io.BytesIO()
    Image.fromarray(new16.astype("<u2"), mode="I;16").save(buf, format="PNG")
    assert close_errno(m / "deepbe.png", buf.getvalue()) == 0
    got16 = np.load(m / "deepbe.npy")
    assert got16.dtype == np.dtype(">u2") and np.array_equal(got16, new16)
    check_archive(archive, before, changed={"rgb": want, "deepbe": new16})


def test_wrong_size_refused(archive, mount):
    before = Snapshot(archive)
    m = mount(archive, "-o", "views=txt,png")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(buf, format="PNG")
    assert close_errno(m / "gray.png", buf.getvalue()) == errno.EINVAL
    assert "width" in getxattr(m / "gray.npy", "error") or \
        "height" in getxattr(m / "gray.npy", "error")
    buf = io.BytesIO()
    Image.fromarray(images()["gray"]).convert("RGB").save(buf, format="PNG")
    # gray saved as RGB with gray pixels is a lossless equivalent: accepted
    assert close_errno(m / "gray.png", buf.getvalue()) == 0
    bad = np.stack([images()["gray"]] * 3, axis=-1)
    bad[0, 0] = (1, 2, 3)
    buf = io.BytesIO()
    Image.fromarray(bad).save(buf, format="PNG")
    assert close_errno(m / "gray.png", buf.getvalue()) == errno.EINVAL
    assert close_errno(m / "gray.png", b"not a png") == errno.EINVAL
    assert np.array_equal(np.load(m / "gray.npy"), images()["gray"])
    # (the accepted equivalent was committed: the same values again)
    check_archive(archive, before, changed={"gray": images()["gray"]})
