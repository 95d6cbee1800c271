"""test_modes.py - the kernel's attribute cache: sizes seen right after a
commit, in the default multi-threaded mode (cached attributes, invalidated
by npzfs) and with -s (no attribute caching)."""
import os

import numpy as np
import pytest

from writeutil import npy_bytes, render, run


@pytest.fixture(params=["mt", "single"])
def opts(request):
    return [] if request.param == "mt" else ["-s"]


def test_sibling_sizes_follow_a_commit(tmp_path, mount, opts):
    """stat x.npy and x.txt (the kernel caches both), change the dtype via
    the text header, stat again at once: both sizes are the new ones."""
    arc = tmp_path / "a.npz"
    a = np.linspace(0, 1, 7)
    np.savez(arc, x=a, other=np.arange(3))
    m = mount(arc, *opts)
    assert os.stat(m / "x.npy").st_size == len(npy_bytes(a))
    assert os.stat(m / "x.txt").st_size == len(render(a))
    text = (m / "x.txt").read_text().replace("'<f8'", "'<f4'")
    with open(m / "x.txt", "w") as f:
        f.write(text)
    b = a.astype("<f4")
    with np.load(arc) as z:
        assert z["x"].dtype == np.float32
        assert np.array_equal(z["x"], b)
    assert os.stat(m / "x.npy").st_size == len(npy_bytes(b))
    assert os.stat(m / "x.txt").st_size == len(render(b))
    assert (m / "x.txt").read_text() == render(b)
    assert (m / "x.npy").read_bytes() == npy_bytes(b)


def test_sed_then_wc(tmp_path, mount, opts):
    """sed -i writes '5' where the view says '5.0': after the rename the view
    is the canonical rendering, and wc -c agrees with it at once."""
    arc = tmp_path / "a.npz"
    a = np.array([1.5, 2.5, 3.5])
    np.savez(arc, p=a)
    m = mount(arc, *opts)
    os.stat(m / "p.txt")
    run(["sed", "-i", "3s/.*/5/", str(m / "p.txt")])
    want = np.array([1.5, 5.0, 3.5])
    with np.load(arc) as z:
        assert np.array_equal(z["p"], want)
    r = run(["wc", "-c", str(m / "p.txt")])
    assert int(r.stdout.split()[0]) == len(render(want))
    assert (m / "p.txt").read_text() == render(want)


def test_removed_view_is_gone_at_once(tmp_path, mount, opts):
    """rm x.npy takes x.txt with it: a stat of x.txt right after fails."""
    arc = tmp_path / "a.npz"
    np.savez(arc, x=np.arange(4), y=np.arange(2))
    m = mount(arc, *opts)
    os.stat(m / "x.txt")
    os.unlink(m / "x.npy")
    with pytest.raises(FileNotFoundError):
        os.stat(m / "x.txt")
    assert sorted(os.listdir(m)) == ["y.npy", "y.txt"]
