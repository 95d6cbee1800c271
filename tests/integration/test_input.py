"""test_input.py - input that numpy can load gets in, input it cannot stays
out (issue 8): object-dtype .npy files copied in, members whose names hold
a NUL byte, symbolic and hard links."""
import errno
import os
import shutil
import zipfile

import numpy as np
import pytest

from writeutil import (COMPRESSIONS, Snapshot, getxattr, make_archive, poll, read,
                       sha256, unmount, write_file)


def obj_npy(path, arr):
    np.save(path, arr, allow_pickle=True)
    return read(path)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_cp_object_npy(tmp_path, mount, compression):
    """A pickled object array copied in is stored byte for byte, gets no
    text view, and numpy loads it back; its view cannot be written."""
    arc = make_archive(tmp_path / "a.npz", compression, {"x": np.arange(3.0)})
    o = np.array([1, "a", None], dtype=object)
    nones = np.array([None] * 1000, dtype=object)   # pickle shorter than 8 bytes each
    src_o = obj_npy(tmp_path / "o.npy", o)
    src_n = obj_npy(tmp_path / "nones.npy", nones)
    m = mount(arc)
    shutil.copyfile(tmp_path / "o.npy", m / "o.npy")
    shutil.copyfile(tmp_path / "nones.npy", m / "nones.npy")
    assert sorted(os.listdir(m.path)) == ["nones.npy", "o.npy", "x.npy", "x.txt"]
    assert read(m / "o.npy") == src_o and read(m / "nones.npy") == src_n
    assert os.stat(m / "nones.npy").st_size == len(src_n)
    with zipfile.ZipFile(arc) as z:
        assert z.read("o.npy") == src_o and z.read("nones.npy") == src_n
    with np.load(arc, allow_pickle=True) as z:
        assert list(z["o"]) == list(o) and list(z["nones"]) == list(nones)
    # Writing the view of an object array is refused, and says why.
    before = Snapshot(arc)
    with pytest.raises(PermissionError):
        write_file(m / "o.txt", b"1\n2\n3\n")
    assert "object array" in getxattr(m / "o.npy", "error")
    assert poll(lambda: "o.txt: o.npy is an object array" in m.stderr(), 5), m.stderr()
    assert not (m / "o.txt").exists()
    assert Snapshot(arc).sha256 == before.sha256
    unmount(m)
    with np.load(arc, allow_pickle=True) as z:
        assert sorted(z.files) == ["nones", "o", "x"]
        assert list(z["o"]) == list(o)


def test_object_npy_not_a_pickle(tmp_path, mount):
    """An object header over bytes that cannot be a pickle is rejected."""
    arc = make_archive(tmp_path / "a.npz", "stored", {"x": np.arange(3.0)})
    good = obj_npy(tmp_path / "o.npy", np.array([1, None], dtype=object))
    before = Snapshot(arc)
    m = mount(arc)
    with pytest.raises(OSError) as exc:
        write_file(m / "o.npy", good[:-1])          # without the STOP opcode
    assert exc.value.errno == errno.EINVAL
    assert "not a pickle" in getxattr(m / "o.npy", "error")
    assert Snapshot(arc).sha256 == before.sha256
    os.unlink(m / "o.npy")
    unmount(m)
    assert Snapshot(arc).sha256 == before.sha256


def nul_archive(path):
    """An archive whose member 'b\\0c.npy' has a NUL byte in its name (in
    the local header and the central directory), between a.npy and d.npy."""
    arrays = {"a": np.arange(3), "bXc": np.arange(4.0), "d": np.eye(2)}
    make_archive(path, "stored", arrays)
    data = bytearray(path.read_bytes())
    found = 0
    i = data.find(b"bXc.npy")
    while i >= 0:
        data[i + 1] = 0
        found += 1
        i = data.find(b"bXc.npy", i + 1)
    assert found == 2
    path.write_bytes(bytes(data))
    return arrays


def test_member_name_with_nul(tmp_path, mount):
    """The member is hidden (with a log line), the others are served; an
    untouched archive stays byte-identical; the first commit drops it."""
    arc = tmp_path / "a.npz"
    arrays = nul_archive(arc)
    before = sha256(arc)            # (Snapshot cannot read that name)
    m = mount(arc)
    assert sorted(os.listdir(m.path)) == ["a.npy", "a.txt", "d.npy", "d.txt"]
    assert (np.load(m / "a.npy") == arrays["a"]).all()
    assert (np.load(m / "d.npy") == arrays["d"]).all()
    assert "name holds a NUL byte, not shown" in m.stderr()
    unmount(m)
    assert sha256(arc) == before

    m = mount(arc)
    write_file(m / "e.txt", b"7\n")
    assert poll(lambda: "name with a NUL byte, dropped" in m.stderr(), 5), m.stderr()
    unmount(m)
    with zipfile.ZipFile(arc) as z:
        assert z.namelist() == ["a.npy", "d.npy", "e.npy"]
        assert z.testzip() is None
    with np.load(arc) as z:
        assert (z["a"] == arrays["a"]).all() and (z["d"] == arrays["d"]).all()
        assert (z["e"] == np.array([7])).all()


def test_links_refused(tmp_path, mount):
    arc = make_archive(tmp_path / "a.npz", "stored", {"x": np.arange(3.0)})
    before = Snapshot(arc)
    m = mount(arc)
    with pytest.raises(PermissionError):
        os.symlink("x.npy", m / "l")
    with pytest.raises(PermissionError):
        os.link(m / "x.npy", m / "h.npy")
    assert sorted(os.listdir(m.path)) == ["x.npy", "x.txt"]
    unmount(m)
    assert Snapshot(arc).sha256 == before.sha256
