"""test_sozip_edit.py - an edit inside a SOZip member npzfs wrote costs the
chunks it touches: the first write starts a copy-on-write edit whose base
is the member's content read through its chunk index, and the commit
deflates anew only the touched chunks (sozip_edit.c).  The oracles: numpy
(every value), the member still SOZip-valid (every index offset inflates on
its own with Python's zlib), zipfile.testzip(), `unzip -t`, the other
members' bytes unchanged; on XFS, the free space (clones, not copies)."""
import os
import random
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from conftest import SANITIZED, Mount
from test_crash import kill_round
from test_sozip_write import check_sozip, member_data
from writeutil import npy_bytes, run, unmount

N = 16 << 20                     # float32: a 64 MiB member, 256 chunks
CLONE_LOG = "commits clone the archive (reflink)"

MMAP_EDIT = r"""
import sys
import numpy as np
a = np.load(sys.argv[1], mmap_mode="r+")
for i, v in zip(sys.argv[2::2], sys.argv[3::2]):
    a[int(i)] = float(v)
a.flush()
del a
"""


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(11)
    return {
        "small": np.arange(10.0),
        "big": np.round(rng.standard_normal(N), 2).astype(np.float32),
        "tail": np.arange(1000, dtype=np.int32),
    }


@pytest.fixture(scope="module")
def template(xfs, arrays, tmp_path_factory):
    """small (numpy's deflate), then big and tail written by npzfs (big is
    SOZip: npzfs deflates new content in chunks on a reflink filesystem)."""
    d = xfs / "sozedit-template"
    d.mkdir()
    arc = d / "a.npz"
    np.savez_compressed(arc, small=arrays["small"])
    tmp = tmp_path_factory.mktemp("sozedit-npy")
    for name in ("big", "tail"):
        np.save(tmp / (name + ".npy"), arrays[name])
    m = Mount(arc, tmp / "mnt", (), tmp).start()
    try:
        for name in ("big", "tail"):
            run(["cp", tmp / (name + ".npy"), m.path])
    finally:
        problems = m.stop()
    assert not problems, problems
    check_sozip(arc, "big.npy", npy_bytes(arrays["big"]))
    yield arc
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["ext4", "xfs"])
def copy(request, template, tmp_path):
    """A copy of the template on the filesystem of the parameter (ext4: the
    temporary directory; xfs: a reflink copy)."""
    if request.param == "xfs":
        d = request.getfixturevalue("xfs") / ("sozedit-" + tmp_path.name)
        d.mkdir()
        arc = d / "a.npz"
        run(["cp", "--reflink=always", template, arc])
        yield request.param, arc
        shutil.rmtree(d, ignore_errors=True)
    else:
        arc = tmp_path / "a.npz"
        shutil.copyfile(template, arc)
        yield request.param, arc


def raw_members(path, names):
    return {n: member_data(path, n)[0] for n in names}


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def hdr_len(arr):
    return len(npy_bytes(arr)) - arr.nbytes


def check_all(arc, want, fs, log):
    with np.load(arc) as z:
        for k, v in want.items():
            assert np.array_equal(z[k], v), k
    with zipfile.ZipFile(arc) as z:
        assert z.testzip() is None
    r = run(["unzip", "-tq", arc])
    assert b"No errors detected" in r.stdout, r.stdout
    if fs == "xfs" or CLONE_LOG in log:
        check_sozip(arc, "big.npy", npy_bytes(want["big"]))


def test_mmap_and_dd_edits(copy, arrays, mount):
    fs, arc = copy
    others = raw_members(arc, ["small.npy", "tail.npy"])
    comp_size = len(member_data(arc, "big.npy")[0])
    free0 = free_bytes(arc.parent)
    m = mount(arc)
    edits = [(0, 1.5), (N // 2, -2.25), (N - 1, 3.75)]
    run(["/usr/bin/python3", "-c", MMAP_EDIT, m / "big.npy"] +
        [str(x) for e in edits for x in e])
    want = {k: v.copy() for k, v in arrays.items()}
    for i, v in edits:
        want["big"][i] = v
    check_all(arc, want, fs, m.stderr())
    # dd conv=notrunc: one value in the middle of a page of another chunk
    i = N // 3 + 5
    val = np.array([42.5], dtype=np.float32).tobytes()
    off = hdr_len(arrays["big"]) + 4 * i
    subprocess.run(["dd", "of=%s" % (m / "big.npy"), "bs=1", "seek=%d" % off,
                    "conv=notrunc", "status=none"], input=val, check=True)
    want["big"][i] = 42.5
    check_all(arc, want, fs, m.stderr())
    # reading through the mount agrees
    got = np.load(m / "big.npy")
    assert np.array_equal(got, want["big"])
    unmount(m)
    check_all(arc, want, fs, m.stderr())
    assert raw_members(arc, ["small.npy", "tail.npy"]) == others
    if fs == "xfs":
        log = m.stderr()
        assert CLONE_LOG in log and "compaction" not in log, log
        assert free0 - free_bytes(arc.parent) < comp_size // 8, (free0, free_bytes(arc.parent))


def test_numpy_deflated_member_becomes_sozip(xfs, mount, tmp_path):
    """A numpy-written deflated member (no index) is copied at its first
    edit and written whole as SOZip; the next edit is copy-on-write."""
    d = xfs / ("sozedit-np-" + tmp_path.name)
    d.mkdir()
    arc = d / "a.npz"
    big = np.round(np.random.default_rng(5).standard_normal(1 << 20), 2)
    np.savez_compressed(arc, big=big)
    m = mount(arc)
    run(["/usr/bin/python3", "-c", MMAP_EDIT, m / "big.npy", "7", "1.25"])
    big[7] = 1.25
    check_sozip(arc, "big.npy", npy_bytes(big))
    run(["/usr/bin/python3", "-c", MMAP_EDIT, m / "big.npy", str(len(big) - 3), "-8.5"])
    big[-3] = -8.5
    check_sozip(arc, "big.npy", npy_bytes(big))
    unmount(m)
    with np.load(arc) as z:
        assert np.array_equal(z["big"], big)
    shutil.rmtree(d, ignore_errors=True)


PATCHER = r"""
import os, sys
path, off, value = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
try:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, value, off)
    finally:
        os.close(fd)
except OSError as e:
    print(e.errno, e)
    sys.exit(3)
"""


def test_kill_9_during_sozip_patch(template, arrays, xfs, tmp_path):
    """kill -9 of the daemon while it commits a patch of the SOZip member:
    the archive on disk is the old or the new version, never a mix."""
    d = xfs / ("sozedit-kill-" + tmp_path.name)
    d.mkdir()
    arc = d / "a.npz"
    run(["cp", "--reflink=always", template, arc])
    state = arrays["big"].copy()
    hdr = hdr_len(state)
    mnt, log = tmp_path / "mnt", tmp_path / "npzfs.log"
    rng = random.Random(os.getpid() + 7)
    for k in range(2 if SANITIZED else 4):
        i = rng.randrange(N)
        new = state.copy()
        new[i] = -float(k + 1)
        rc = kill_round(arc, mnt, log, rng, PATCHER, str(mnt / "big.npy"),
                        str(hdr + 4 * i), np.float32(-float(k + 1)).tobytes().hex())
        with zipfile.ZipFile(arc) as z:
            assert z.testzip() is None, k
        with np.load(arc) as z:
            got = z["big"]
            assert np.array_equal(z["tail"], arrays["tail"]), k
        if rc == 0:
            assert np.array_equal(got, new), k
        else:
            assert np.array_equal(got, state) or np.array_equal(got, new), k
        check_sozip(arc, "big.npy", npy_bytes(got))
        state = got
        for name in os.listdir(d):
            if name not in ("a.npz", ".a.npz.lock"):
                os.unlink(d / name)
    shutil.rmtree(d, ignore_errors=True)
