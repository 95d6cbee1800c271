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
import struct
import subprocess
import zipfile
import zlib

import numpy as np
import pytest

from conftest import SANITIZED, Mount
from test_crash import kill_round
from sozip import hidden_index_at
from test_sozip_write import member_data
from writeutil import npy_bytes, run, unmount

N = 16 << 20                     # float32: a 64 MiB member, 256 chunks
CLONE_LOG = "commits clone the archive (reflink)"
COPY_LOG = "commits copy the archive"

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


def check_sozip(path, name, want):
    """Member name is SOZip-valid: its hidden index follows its data, says
    its sizes, and every chunk inflates on its own (from its offset to the
    next) to exactly its bytes of want, only the last ending the stream."""
    comp, info = member_data(path, name)
    found = hidden_index_at(path, name)
    assert found is not None, "no hidden index after %s" % name
    idx = found[1]
    version, skip, chunk, osize, usize, csize = struct.unpack("<IIIIQQ", idx[:32])
    assert (version, skip, osize) == (1, 0, 8)
    assert (usize, csize) == (info.file_size, info.compress_size) == (len(want), len(comp))
    n = (usize - 1) // chunk
    assert len(idx) == 32 + 8 * n
    offs = [0] + list(struct.unpack("<%dQ" % n, idx[32:])) + [csize]
    for i in range(n + 1):
        d = zlib.decompressobj(-15)
        out = d.decompress(comp[offs[i]:offs[i + 1]])
        assert out == want[i * chunk:(i + 1) * chunk], "chunk %d does not inflate alone" % i
        assert d.eof == (i == n), "chunk %d: end of stream %s" % (i, d.eof)
    assert zlib.crc32(want) == info.CRC


def raw_members(path, names):
    return {n: member_data(path, n)[0] for n in names}


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def hdr_len(arr):
    return len(npy_bytes(arr)) - arr.nbytes


def check_all(arc, want):
    with np.load(arc) as z:
        for k, v in want.items():
            assert np.array_equal(z[k], v), k
    with zipfile.ZipFile(arc) as z:
        assert z.testzip() is None
    r = run(["unzip", "-tq", arc])
    assert b"No errors detected" in r.stdout, r.stdout
    check_sozip(arc, "big.npy", npy_bytes(want["big"]))


def test_mmap_and_dd_edits(copy, arrays, mount):
    """np.load(mmap_mode='r+') edits of the first, a middle and the last
    value, then a dd conv=notrunc write: each close commits; the member
    stays SOZip (XFS: patched in place, its chunks cloned with the file;
    ext4: patched in its copy)."""
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
    with np.load(arc) as z:         # close returned: the archive holds it
        assert np.array_equal(z["big"], want["big"])
    # dd conv=notrunc: one value in the middle of a page of another chunk
    i = N // 3 + 5
    val = np.array([42.5], dtype=np.float32).tobytes()
    off = hdr_len(arrays["big"]) + 4 * i
    subprocess.run(["dd", "of=%s" % (m / "big.npy"), "bs=1", "seek=%d" % off,
                    "conv=notrunc", "status=none"], input=val, check=True)
    want["big"][i] = 42.5
    assert np.array_equal(np.load(m / "big.npy"), want["big"])
    unmount(m)
    check_all(arc, want)
    assert raw_members(arc, ["small.npy", "tail.npy"]) == others
    log = m.stderr()
    if fs == "ext4":    # copied (no reflink), patched as SOZip all the same
        assert COPY_LOG in log, log
    else:
        assert CLONE_LOG in log and "compaction" not in log, log
        assert free0 - free_bytes(arc.parent) < comp_size // 8, (free0, free_bytes(arc.parent))


def test_grown_chunk_written_anew(xfs, template, arrays, mount, tmp_path):
    """Random bytes over a whole chunk: it deflates bigger than before, so
    the member is written anew after the kept ones, its other chunks cloned
    from the old data (congruent modulo 4096), with a new index.  (A stored
    filler member keeps the old member's hole below the compaction
    threshold.)"""
    d = xfs / ("sozedit-grow-" + tmp_path.name)
    d.mkdir()
    arc = d / "a.npz"
    run(["cp", "--reflink=always", template, arc])
    filler = np.zeros(96 << 20, dtype=np.uint8)
    with zipfile.ZipFile(arc, "a", compression=zipfile.ZIP_STORED) as z:
        z.writestr("filler.npy", npy_bytes(filler))
    offsets = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    others = raw_members(arc, ["small.npy", "tail.npy", "filler.npy"])
    comp_size = len(member_data(arc, "big.npy")[0])
    free0 = free_bytes(d)
    m = mount(arc)
    noise = np.random.default_rng(9).bytes(256 << 10)
    off = 5 * (256 << 10)
    with open(m / "big.npy", "r+b") as f:
        f.seek(off)
        f.write(noise)
    want = bytearray(npy_bytes(arrays["big"]))
    want[off:off + len(noise)] = noise
    unmount(m)
    log = m.stderr()
    assert CLONE_LOG in log and "compaction" not in log, log
    after = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    assert after["big.npy"] > offsets["filler.npy"]       # written anew
    assert raw_members(arc, ["small.npy", "tail.npy", "filler.npy"]) == others
    check_sozip(arc, "big.npy", bytes(want))
    with zipfile.ZipFile(arc) as z:
        assert z.testzip() is None
    r = run(["unzip", "-tq", arc])
    assert b"No errors detected" in r.stdout, r.stdout
    with np.load(arc) as z:
        assert z["big"].tobytes() == bytes(want)[hdr_len(arrays["big"]):]
    assert free0 - free_bytes(d) < comp_size // 8, (free0, free_bytes(d))
    shutil.rmtree(d, ignore_errors=True)


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
    for k in range(2 if SANITIZED else 3):
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
