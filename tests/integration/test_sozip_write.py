"""test_sozip_write.py - deflated members npzfs writes on a reflink
filesystem are SOZip (spec 0.5): written in chunks of 256 KiB that each
inflate on their own, with the hidden index right after the data.  The
oracles: numpy, zipfile.testzip(), `unzip -t`, and every chunk inflated
alone with Python's zlib against numpy's bytes."""
import shutil
import struct
import zipfile
import zlib

import numpy as np
import pytest

from sozip import hidden_index_at
from writeutil import npy_bytes, run, unmount

CHUNK = 256 << 10


@pytest.fixture
def workdir(xfs, request):
    d = xfs / ("sozipw-" + request.node.name.replace("[", "_").replace("]", ""))
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def member_data(path, name):
    """(compressed bytes, info) of member name."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        h = f.read(30)
        nlen, xlen = struct.unpack("<HH", h[26:30])
        f.seek(info.header_offset + 30 + nlen + xlen)
        return f.read(info.compress_size), info


def check_sozip(path, name, want):
    """Member name of the archive at path is SOZip-valid and holds want."""
    comp, info = member_data(path, name)
    found = hidden_index_at(path, name)
    assert found is not None, "no hidden index after %s" % name
    iname, idx = found
    d, _, base = name.rpartition("/")
    assert iname == (d + "/" if d else "") + "." + base + ".sozip.idx"
    version, skip, chunk, osize, usize, csize = struct.unpack("<IIIIQQ", idx[:32])
    assert (version, skip, chunk, osize) == (1, 0, CHUNK, 8)
    assert (usize, csize) == (info.file_size, info.compress_size) == (len(want), len(comp))
    n = (usize - 1) // chunk
    assert len(idx) == 32 + 8 * n
    offs = [0] + list(struct.unpack("<%dQ" % n, idx[32:]))
    assert offs == sorted(set(offs)) and offs[-1] < csize
    for i, off in enumerate(offs):
        piece = want[i * chunk:(i + 1) * chunk]
        out = zlib.decompressobj(-15).decompress(comp[off:], len(piece))
        assert out == piece, "chunk %d does not inflate alone" % i
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.read(name) == want
    r = run(["unzip", "-tq", path])
    assert b"No errors detected" in r.stdout, r.stdout


def test_cp_into_deflated_archive_writes_sozip(workdir, mount, tmp_path):
    rng = np.random.default_rng(3)
    arc = workdir / "a.npz"
    small = np.arange(10.0)
    np.savez_compressed(arc, small=small)
    big = np.round(rng.standard_normal(700_000), 3)        # 5.6 MB, 22 chunks
    np.save(tmp_path / "big.npy", big)
    m = mount(arc)
    run(["cp", tmp_path / "big.npy", m.path])
    check_sozip(arc, "big.npy", npy_bytes(big))
    # a text edit rewrites the array: SOZip again, in its new version
    run(["sed", "-i", "2s/.*/42.125/", m / "big.txt"])
    big2 = big.copy()
    big2[0] = 42.125
    check_sozip(arc, "big.npy", npy_bytes(big2))
    unmount(m)
    with np.load(arc) as z:
        assert np.array_equal(z["big"], big2) and np.array_equal(z["small"], small)


def test_small_and_exact_sizes(workdir, mount, tmp_path):
    """Content of one chunk or less gets no index (the spec wants more than
    one chunk); exactly two chunks gets one offset."""
    arc = workdir / "a.npz"
    np.savez_compressed(arc, x=np.arange(3))
    m = mount(arc)
    one = np.zeros(1000, dtype=np.uint8)
    (tmp_path / "one.npy").write_bytes(npy_bytes(one))
    run(["cp", tmp_path / "one.npy", m.path])
    assert hidden_index_at(arc, "one.npy") is None
    hdr = len(npy_bytes(np.zeros(0, dtype=np.uint8)))
    two = np.frombuffer(np.random.default_rng(4).bytes(2 * CHUNK - hdr), dtype=np.uint8)
    data = npy_bytes(two)
    assert len(data) == 2 * CHUNK
    (tmp_path / "two.npy").write_bytes(data)
    run(["cp", tmp_path / "two.npy", m.path])
    check_sozip(arc, "two.npy", data)
    unmount(m)
