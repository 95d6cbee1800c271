"""test_sozip.py - SOZip members (issue 11, reading): a deflated member with
a hidden chunk index (sozip.py writes them) is read by inflating only the
chunks a read covers, with no cache file.

Oracles: numpy, zipfile and `unzip -t` on the archive (the writer is
right), the member's bytes as zipfile reads them, and the daemon's cache
files in cache_dir (through /proc/PID/fd): a SOZip read leaves none, where
the ordinary path caches everything it inflated up to the read.
"""
import io
import os
import random
import struct
import subprocess
import threading
import zipfile
import zlib

import numpy as np
import pytest

import sozip
from conftest import read
from writeutil import run, unmount

MiB = 1 << 20
CLONE_LOG = "commits clone the archive (reflink)"
IGNORED_LOG = "SOZip index ignored"
MISMATCH_LOG = "SOZip index does not match the data"


def cache_bytes(pid, cache_dir):
    """Bytes on disk of the daemon's open files in cache_dir."""
    d, total = os.path.realpath(cache_dir) + "/", 0
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        p = os.path.join(fd_dir, fd)
        try:
            if os.readlink(p).startswith(d):
                total += os.stat(p).st_blocks * 512
        except OSError:
            pass
    return total


def pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def offsets_for(size, chunk, rng, n=60):
    """Read offsets: chunk boundaries and their neighbours, the last
    partial chunk, and random ones."""
    offs = {0, 1, size - 1, max(0, size - 10), size // chunk * chunk,
            size // chunk * chunk - 1}
    for k in range(1, min(size // chunk, 12)):
        offs.update((k * chunk - 1, k * chunk, k * chunk + 1))
    offs.update(rng.randrange(size) for _ in range(n))
    return sorted(o for o in offs if 0 <= o < size)


def check_random_reads(path, want, chunk, seed=1):
    rng = random.Random(seed)
    size = len(want)
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offsets_for(size, chunk, rng):
            for n in (1, 100, chunk, chunk + 1, 3 * chunk + 17, 200000):
                got = os.pread(fd, n, off)
                assert got == want[off:off + n], (off, n)
    finally:
        os.close(fd)


def sozip_npy(arr):
    """The .npy bytes of arr."""
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def arrays():
    rng = np.random.default_rng(11)
    return {
        "a": np.round(rng.standard_normal(400000), 3),    # 3.2 MB, SOZip
        "b": np.arange(1000, dtype=np.int32),             # deflated
        "sub/c": rng.integers(0, 50, 300000, dtype=np.int64),  # SOZip, descriptor
        "d": np.linspace(0, 1, 200000),                   # deflated, big
    }


@pytest.fixture(scope="module")
def sozip_archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("sozip")
    src = d / "src.npz"
    np.savez_compressed(src, **arrays())
    dst = d / "sozip.npz"
    members = sozip.npz_to_sozip(src, dst, ["a.npy"], chunk=32 << 10)
    # sub/c: small chunks, 4-byte offsets, a data descriptor
    m = members["sub/c.npy"]
    members["sub/c.npy"] = sozip.Member(m.name, m.data, "sozip", chunk=4096,
                                        offset_size=4, descriptor=True)
    sozip.write_zip(dst, list(members.values()))
    return dst, members


def test_writer_is_right(sozip_archive):
    """numpy, zipfile and unzip read the archive; every chunk offset of the
    index inflates on its own to its bytes."""
    path, members = sozip_archive
    with np.load(path) as z:
        for k, v in arrays().items():
            assert np.array_equal(z[k], v), k
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert ".a.npy.sozip.idx" not in z.namelist()
    r = run(["unzip", "-tq", path])
    assert b"No errors detected" in r.stdout
    raw = read(path)
    for name in ("a.npy", "sub/c.npy"):
        m = members[name]
        iname, idx = sozip.hidden_index_at(path, name)
        assert iname == sozip.index_name(name)
        ver, skip, chunk, osz, size, comp = struct.unpack("<IIIIQQ", idx[:32])
        assert (ver, chunk, size, comp) == (1, m.chunk, len(m.data), m.layout["comp_size"])
        fmt = "<%d%s" % ((len(idx) - 32 - skip) // osz, "I" if osz == 4 else "Q")
        offs = [0, *struct.unpack(fmt, idx[32 + skip:]), comp]
        assert len(offs) - 1 == (size + chunk - 1) // chunk
        data = raw[m.layout["data_off"]:m.layout["data_off"] + comp]
        for k in range(len(offs) - 1):
            d = zlib.decompressobj(-15)
            out = d.decompress(data[offs[k]:offs[k + 1]])
            assert out == m.data[k * chunk:(k + 1) * chunk], (name, k)


def test_cat_and_random_reads(sozip_archive, mount, tmp_path):
    """cat of every member equals its bytes; reads at chunk boundaries,
    in the last partial chunk and across chunks are right; the SOZip
    members leave nothing in the cache."""
    path, members = sozip_archive
    cache = tmp_path / "cache"
    cache.mkdir()
    m = mount(path, "-o", "cache_dir=%s" % cache)
    for name in ("a.npy", "sub/c.npy"):
        want = members[name].data
        check_random_reads(m / name, want, members[name].chunk)
        r = subprocess.run(["cat", str(m / name)], capture_output=True, check=True)
        assert r.stdout == want, name
    assert cache_bytes(m.proc.pid, cache) == 0
    # the ordinary members too (their bytes cached the ordinary way)
    for name in ("b.npy", "d.npy"):
        assert read(m / name) == members[name].data, name
    assert np.array_equal(np.load(m / "a.npy"), arrays()["a"])
    assert os.getxattr(m / "a.npy", "user.npzfs.compression") == b"deflated"
    assert IGNORED_LOG not in m.stderr() and MISMATCH_LOG not in m.stderr()


def test_parallel_reads(sozip_archive, mount):
    """Reads of one SOZip member from 8 threads at once, and of another
    member meanwhile, are all right."""
    path, members = sozip_archive
    m = mount(path)
    errors = []

    def worker(seed, name):
        rng = random.Random(seed)
        want = members[name].data
        fd = os.open(m / name, os.O_RDONLY)
        try:
            for _ in range(150):
                off = rng.randrange(len(want))
                n = rng.randrange(1, 3 * members[name].chunk)
                if os.pread(fd, n, off) != want[off:off + n]:
                    errors.append((name, off, n))
        finally:
            os.close(fd)

    ts = [threading.Thread(target=worker, args=(k, "a.npy" if k < 8 else "sub/c.npy"))
          for k in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]


@pytest.fixture(scope="module")
def big_archives(tmp_path_factory):
    """64 MiB of content as one SOZip member, and as a plain deflated one."""
    d = tmp_path_factory.mktemp("sozip_big")
    data = np.arange(8 * MiB, dtype=np.uint64)
    data ^= data >> np.uint64(7)
    raw = sozip_npy(data)
    so = sozip.write_zip(d / "big_sozip.npz", [sozip.Member("big.npy", raw, "sozip", level=1)])
    plain = sozip.write_zip(d / "big_plain.npz", [sozip.Member("big.npy", raw, "deflated", level=1)])
    return so, plain, raw


def test_far_read_inflates_only_its_chunks(big_archives, mount, tmp_path):
    """A 4 KiB read at 60 MiB of a 64 MiB SOZip member on a fresh mount is
    right and inflates nothing before it: no cache file holds a byte (the
    plain deflated member, read the same way, caches the 60 MiB before)."""
    so, plain, raw = big_archives
    off = 60 * MiB + 12345
    for arc, sozip_member in ((so, True), (plain, False)):
        cache = tmp_path / ("cache_%s" % sozip_member)
        cache.mkdir()
        m = mount(arc, "-o", "cache_dir=%s" % cache)
        assert pread(m / "big.npy", off, 4096) == raw[off:off + 4096]
        used = cache_bytes(m.proc.pid, cache)
        if sozip_member:
            assert used == 0, used
            assert pread(m / "big.npy", len(raw) - 100, 4096) == raw[-100:]
            assert cache_bytes(m.proc.pid, cache) == 0
        else:
            assert used >= 60 * MiB, used
        unmount(m)


def _swap_offsets(idx):
    b = bytearray(idx)
    b[32:40], b[40:48] = idx[40:48], idx[32:40]
    return bytes(b)


def _set64(pos, delta):
    def f(idx):
        v = struct.unpack_from("<Q", idx, pos)[0] + delta
        return idx[:pos] + struct.pack("<Q", v) + idx[pos + 8:]
    return f


def _set32(pos, value):
    return lambda idx: idx[:pos] + struct.pack("<I", value) + idx[pos + 4:]


def _last_offset_past(idx):
    comp = struct.unpack_from("<Q", idx, 24)[0]
    return idx[:-8] + struct.pack("<Q", comp + 10)


def _shift_offsets(idx):
    n = (len(idx) - 32) // 8
    offs = struct.unpack_from("<%dQ" % n, idx, 32)
    return idx[:32] + struct.pack("<%dQ" % n, *(o + 1 for o in offs))


DAMAGE = {
    # name: (tamper, fix_crc, log line)
    "offsets_not_increasing": (_swap_offsets, True, IGNORED_LOG),
    "offset_past_data": (_last_offset_past, True, IGNORED_LOG),
    "wrong_size": (_set64(16, 1), True, IGNORED_LOG),
    "wrong_comp_size": (_set64(24, -1), True, IGNORED_LOG),
    "truncated": (lambda idx: idx[:-8], True, IGNORED_LOG),
    "truncated_header": (lambda idx: idx[:20], True, IGNORED_LOG),
    "chunk_too_small": (_set32(8, 512), True, IGNORED_LOG),
    "bad_version": (_set32(0, 2), True, IGNORED_LOG),
    "bad_crc": (lambda idx: idx[:-1] + bytes([idx[-1] ^ 1]), False, IGNORED_LOG),
    "shifted_offsets": (_shift_offsets, True, MISMATCH_LOG),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_falls_back(damage, tmp_path, mount):
    """A damaged index is logged once and the member reads right through
    the ordinary path; numpy and unzip never notice."""
    tamper, fix_crc, log = DAMAGE[damage]
    data = sozip_npy(np.round(np.random.default_rng(3).standard_normal(150000), 2))
    arc = sozip.write_zip(tmp_path / "bad.npz", [
        sozip.Member("x.npy", data, "sozip", chunk=4096, tamper=tamper, fix_crc=fix_crc),
        sozip.Member("y.npy", sozip_npy(np.arange(10)), "stored"),
    ])
    assert b"No errors detected" in run(["unzip", "-tq", arc]).stdout
    with np.load(arc) as z:
        assert z["x"].shape == (150000,)
    m = mount(arc)
    check_random_reads(m / "x.npy", data, 4096, seed=5)
    assert read(m / "x.npy") == data
    assert m.stderr().count(log) == 1, m.stderr()


def test_rewrite_commit_drops_index(tmp_path, mount):
    """The rewrite path (libzip) copies a kept member's data only: the index
    is gone and the member reads as a plain deflated one."""
    src = tmp_path / "src.npz"
    np.savez_compressed(src, a=arrays()["a"], b=arrays()["b"])
    arc = tmp_path / "a.npz"
    sozip.npz_to_sozip(src, arc, ["a.npy"])
    assert sozip.hidden_index_at(arc, "a.npy")
    m = mount(arc, "-o", "commit=rewrite")
    np.save(m / "b.npy", np.arange(7))
    unmount(m)
    assert sozip.hidden_index_at(arc, "a.npy") is None
    with np.load(arc) as z:
        assert np.array_equal(z["a"], arrays()["a"])
        assert np.array_equal(z["b"], np.arange(7))
    m = mount(arc)
    assert np.array_equal(np.load(m / "a.npy"), arrays()["a"])


def test_clone_commit_keeps_index(xfs, mount, request):
    """On a reflink XFS, a commit of another member keeps the kept SOZip
    member's hidden index right after its data, and a fresh mount still
    reads the member through it (nothing cached)."""
    d = xfs / request.node.name
    d.mkdir()
    src = d / "src.npz"
    np.savez_compressed(src, **arrays())
    arc = d / "a.npz"
    members = sozip.npz_to_sozip(src, arc, ["a.npy", "sub/c.npy"], chunk=8192)
    before = {n: sozip.hidden_index_at(arc, n) for n in ("a.npy", "sub/c.npy")}
    m = mount(arc)
    np.save(m / "b.npy", np.arange(5))          # replaces b
    unmount(m)
    assert CLONE_LOG in m.stderr(), m.stderr()
    for n, idx in before.items():
        assert sozip.hidden_index_at(arc, n) == idx, n
    with zipfile.ZipFile(arc) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["a.npy", "b.npy", "d.npy", "sub/c.npy"]
    assert b"No errors detected" in run(["unzip", "-tq", arc]).stdout
    with np.load(arc) as z:
        assert np.array_equal(z["a"], arrays()["a"])
        assert np.array_equal(z["b"], np.arange(5))
    cache = d / "cache"
    cache.mkdir()
    m = mount(arc, "-o", "cache_dir=%s" % cache)
    check_random_reads(m / "a.npy", members["a.npy"].data, 8192, seed=9)
    check_random_reads(m / "sub/c.npy", members["sub/c.npy"].data, 8192, seed=9)
    assert cache_bytes(m.proc.pid, cache) == 0
    assert IGNORED_LOG not in m.stderr() and MISMATCH_LOG not in m.stderr()


def test_members_npzfs_writes_read_as_sozip(xfs, mount, request):
    """A deflated member written by a cloned commit (npzfs's own SOZip
    writer) is read back through its index on a fresh mount: right bytes,
    nothing cached, no complaint about the index."""
    d = xfs / request.node.name
    d.mkdir()
    arc = d / "w.npz"
    np.savez_compressed(arc, b=arrays()["b"])
    new = np.round(np.random.default_rng(8).standard_normal(300000), 3)
    m = mount(arc)
    np.save(m / "n.npy", new)
    unmount(m)
    assert CLONE_LOG in m.stderr(), m.stderr()
    hidden = sozip.hidden_index_at(arc, "n.npy")
    assert hidden and hidden[0] == ".n.npy.sozip.idx"
    chunk = struct.unpack_from("<I", hidden[1], 8)[0]
    cache = d / "cache"
    cache.mkdir()
    m = mount(arc, "-o", "cache_dir=%s" % cache)
    want = sozip_npy(new)
    check_random_reads(m / "n.npy", want, chunk, seed=4)
    assert read(m / "n.npy") == want
    assert cache_bytes(m.proc.pid, cache) == 0
    assert IGNORED_LOG not in m.stderr() and MISMATCH_LOG not in m.stderr()


def test_check_reads_through_the_index(tmp_path):
    """`npzfs --check` also reads a SOZip member chunk by chunk through its
    index: a sound one passes; an index whose offsets point elsewhere (the
    data itself is sound: numpy and unzip pass) is reported."""
    from conftest import run_npzfs
    data = sozip_npy(np.round(np.random.default_rng(8).standard_normal(150000), 2))
    good = sozip.write_zip(tmp_path / "good.npz", [
        sozip.Member("x.npy", data, "sozip", chunk=4096)])
    bad = sozip.write_zip(tmp_path / "bad.npz", [
        sozip.Member("x.npy", data, "sozip", chunk=4096, tamper=_shift_offsets)])
    assert b"No errors detected" in run(["unzip", "-tq", bad]).stdout
    res = run_npzfs("--check", good, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_npzfs("--check", bad, timeout=120)
    out = res.stdout.decode()
    assert res.returncode == 1, out
    assert "x.npy: SOZip index does not match the data" in out, out
