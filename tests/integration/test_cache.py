"""test_cache.py - one disk budget for everything the daemon caches
(issue 8, part 2; SPEC.md "-o cache_size", "-o cache_dir").

The cache files are unlinked, so the tests measure them through the
daemon's own descriptors (/proc/PID/fd, the files that live in cache_dir),
sampled while the daemon works.
"""
import ctypes
import errno
import os
import signal
import struct
import subprocess
import threading
import time
import zlib

import numpy as np
import pytest

from conftest import read, run_npzfs, tmpfs

MiB = 1 << 20
GiB = 1 << 30

_libz = ctypes.CDLL("libz.so.1")
_libz.crc32_combine.restype = ctypes.c_ulong
_libz.crc32_combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long]


def _crc_zeros(n):
    """CRC-32 of n zero bytes, by doubling (crc32_combine)."""
    crc, block, blen = 0, zlib.crc32(bytes(1)), 1
    while n:
        if n & 1:
            crc = _libz.crc32_combine(crc, block, blen)
        block = _libz.crc32_combine(block, block, blen)
        blen *= 2
        n >>= 1
    return crc


def _deflate_zeros(prefix, nzeros):
    """Raw deflate of prefix + nzeros zero bytes, fast for any size: after a
    full flush a 1 MiB block of zeros always compresses to the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(prefix)]
    first = min(nzeros, MiB)
    out.append(c.compress(bytes(first)) + c.flush(zlib.Z_FULL_FLUSH))
    left = nzeros - first
    if left >= 2 * MiB:
        block = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
        left -= MiB
        assert c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH) == block
        left -= MiB
        out.append(block * 2)
        out.append(block * (left // MiB))
        left %= MiB
    out.append(c.compress(bytes(left)) + c.flush())
    return b"".join(out)


def write_zip(path, members):
    """A zip64 archive by hand: members are (name, prefix, nzeros): content
    prefix + nzeros zero bytes, deflated (bombs of any size in a few MB)."""
    body, central = [], []
    off = 0
    for name, prefix, nzeros in members:
        data = _deflate_zeros(prefix, nzeros)
        size = len(prefix) + nzeros
        crc = _libz.crc32_combine(zlib.crc32(prefix), _crc_zeros(nzeros), nzeros)
        nb = name.encode()
        local = struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 8, 0, 0x21, crc,
                            0xffffffff, 0xffffffff, len(nb), 20)
        local += nb + struct.pack("<HHQQ", 1, 16, size, len(data))
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 8, 0,
                                   0x21, crc, 0xffffffff, 0xffffffff, len(nb), 28,
                                   0, 0, 0, 0, 0xffffffff)
                       + nb + struct.pack("<HHQQQ", 1, 24, size, len(data), off))
        body += [local, data]
        off += len(local) + len(data)
    cd = b"".join(central)
    n = len(members)
    eocd64 = struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), off)
    loc = struct.pack("<IIQI", 0x07064b50, 0, off + len(cd), 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff,
                       0xffffffff, 0)
    with open(path, "wb") as f:
        f.write(b"".join(body) + cd + eocd64 + loc + eocd)
    return path


def npy_header(descr, shape):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    pad = 64 - (10 + len(d) + 1) % 64
    d = d + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


class CacheWatch:
    """Samples the bytes on disk of the daemon's files in cache_dir (and
    its VmHWM) on a thread until stopped: .peak, .hwm_kib.

    One sample stats the files one after another, so an eviction in one
    file and a write to another between two stats count both.  A sample
    over `limit` is therefore taken again with the daemon stopped
    (SIGSTOP: every thread out of its syscall), which is exact."""

    def __init__(self, pid, cache_dir, limit=None):
        self.pid, self.dir = pid, os.path.realpath(cache_dir) + "/"
        self.limit = limit
        self.peak, self.samples = 0, 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def used(self):
        total = 0
        fd_dir = "/proc/%d/fd" % self.pid
        for fd in os.listdir(fd_dir):
            p = os.path.join(fd_dir, fd)
            try:
                if os.readlink(p).startswith(self.dir):
                    total += os.stat(p).st_blocks * 512
            except OSError:
                pass
        return total

    def _all_stopped(self):
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in "tTZX":
                return False
        return True

    def used_exact(self):
        os.kill(self.pid, signal.SIGSTOP)
        try:
            while not self._all_stopped():
                time.sleep(0.0005)  # polling a state the kernel sets
            return self.used()
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def sample(self):
        u = self.used()
        if self.limit is not None and u > self.limit:
            u = self.used_exact()
        self.peak = max(self.peak, u)

    def _run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.samples += 1
            self.stop_ev.wait(0.005)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join()
        self.sample()

    def hwm_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0


@pytest.fixture
def cache_dir(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    return d


def test_bomb_last_4k(tmp_path, mount, cache_dir):
    """A few MB archive whose member inflates to 4 GiB: its last 4 KiB are
    read (streaming: the member alone is bigger than the budget) with the
    cache never over cache_size=256M, and the other members still work."""
    size = 4 * GiB + MiB
    arc = write_zip(tmp_path / "bomb.npz", [
        ("bomb.bin", b"", size),
        ("a.npy", npy_header("<f8", "(1000,)"), 8000),
    ])
    assert os.path.getsize(arc) < 16 * MiB
    m = mount(arc, "-o", "cache_size=256M,cache_dir=%s" % cache_dir)
    assert os.stat(m / "bomb.bin").st_size == size
    with CacheWatch(m.proc.pid, cache_dir, 256 * MiB) as w:
        fd = os.open(m / "bomb.bin", os.O_RDONLY)
        try:
            assert os.pread(fd, 4096, size - 4096) == bytes(4096)
            assert os.pread(fd, 4096, 0) == bytes(4096)
        finally:
            os.close(fd)
        assert np.array_equal(np.load(m / "a.npy"), np.zeros(1000))
    assert w.samples > 0
    assert w.peak <= 256 * MiB, "cache reached %d MiB" % (w.peak >> 20)
    assert w.hwm_kib() < 128 * 1024


def test_lru_eviction_within_budget(tmp_path, mount, cache_dir):
    """Members that together pass the budget are all served right, the
    cache stays within it, and the first one read again is right."""
    rng = np.random.default_rng(4)
    arrays = {"m%d" % i: rng.integers(0, 4, size=3 * MiB, dtype=np.uint8) for i in range(6)}
    arc = tmp_path / "lru.npz"
    np.savez_compressed(arc, **arrays)
    m = mount(arc, "-o", "cache_size=8M,cache_dir=%s" % cache_dir)
    with CacheWatch(m.proc.pid, cache_dir, 8 * MiB + 64 * 1024) as w:
        for _ in range(2):
            for k, v in arrays.items():
                assert np.array_equal(np.load(m / (k + ".npy")), v), k
        assert read(m / "m0.txt").splitlines()[1:4] == [str(x).encode() for x in arrays["m0"][:3]]
    assert w.peak <= 8 * MiB + 64 * 1024, "cache reached %d KiB" % (w.peak >> 10)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2 MiB tmpfs for cache_dir, always unmounted."""
    with tmpfs(tmp_path / "tiny", "2m") as d:
        yield d


def test_full_cache_disk_is_a_miss(tmp_path, tiny_fs, mount):
    """ENOSPC in the cache directory (budget bigger than the disk) is a cache
    miss: every member and view still reads right."""
    rng = np.random.default_rng(5)
    arrays = {"a": rng.integers(0, 9, size=3 * MiB, dtype=np.uint8),
              "b": rng.random(300000), "c": np.arange(20)}
    arc = tmp_path / "full.npz"
    np.savez_compressed(arc, **arrays)
    m = mount(arc, "-o", "cache_size=1G,cache_dir=%s" % tiny_fs)
    for _ in range(2):
        for k, v in arrays.items():
            assert np.array_equal(np.load(m / (k + ".npy")), v), k
    text = read(m / "b.txt")
    assert np.array_equal(np.loadtxt(text.decode().splitlines()[1:]), arrays["b"])
    assert read(m / "c.txt").decode().splitlines()[1:] == [str(i) for i in range(20)]


N_BOOL = 64 * MiB


@pytest.fixture(scope="module")
def bool_archive(tmp_path_factory):
    """Ten 64 Mi-element bool arrays, deflated (a few MB)."""
    d = tmp_path_factory.mktemp("bools")
    hdr = npy_header("|b1", "(%d,)" % N_BOOL)
    return write_zip(d / "bools.npz", [("x%d.npy" % i, hdr, N_BOOL) for i in range(10)])


def test_ls_l_renders_only_small_views(bool_archive, mount, cache_dir):
    """ls -l of ten 64 Mi-element bool arrays renders no view (384 MiB of
    text each): fast, and nearly nothing cached."""
    m = mount(bool_archive, "-o", "cache_dir=%s" % cache_dir)
    with CacheWatch(m.proc.pid, cache_dir) as w:
        t0 = time.monotonic()
        out = subprocess.run(["ls", "-l", str(m.path)], capture_output=True, check=True)
        took = time.monotonic() - t0
    lines = out.stdout.decode().splitlines()[1:]
    sizes = {ln.split()[-1]: int(ln.split()[4]) for ln in lines}
    assert len(sizes) == 20
    for i in range(10):
        assert sizes["x%d.npy" % i] == N_BOOL + 128
        assert sizes["x%d.txt" % i] == 0       # bound 6 bytes x 64 Mi: not rendered
    assert took < 5, took
    assert w.peak < 16 * MiB, "cache reached %d MiB" % (w.peak >> 20)
    assert w.hwm_kib() < 128 * 1024


def test_render_blocks_no_other_file(bool_archive, mount, cache_dir):
    """While a 384 MiB view renders (at open; bigger than cache_size, so
    only its size is kept), stat and ls of other files answer at once; the
    view's size and its last bytes are then right."""
    m = mount(bool_archive, "-o", "cache_size=256M,cache_dir=%s" % cache_dir)
    first = "# {'descr': '|b1', 'fortran_order': False, 'shape': (%d,), }\n" % N_BOOL
    want_size = len(first) + 6 * N_BOOL
    done, out = threading.Event(), {}

    def opener():
        fd = os.open(m / "x0.txt", os.O_RDONLY)
        out["size"] = os.fstat(fd).st_size
        out["fd"] = fd
        done.set()

    with CacheWatch(m.proc.pid, cache_dir, 256 * MiB) as w:
        t = threading.Thread(target=opener)
        t.start()
        worst, during = 0.0, 0
        # every round that starts before the open returned counts, however
        # long it takes: a stat that waited for the render shows as a slow
        # round (a round that ended first would hide it)
        while not done.is_set():
            t0 = time.monotonic()
            os.stat(m / "x5.npy")
            os.stat(m / "x3.txt")
            os.listdir(m.path)
            worst = max(worst, time.monotonic() - t0)
            during += 1
        t.join()
        fd = out["fd"]
        try:
            assert out["size"] == want_size
            assert os.pread(fd, len(first), 0) == first.encode()
            assert os.pread(fd, 12, want_size - 12) == b"False\nFalse\n"
        finally:
            os.close(fd)
    assert during >= 1, "the render took no time at all?"
    assert worst < 0.5, "stat waited %.2fs for a render" % worst
    assert w.peak <= 256 * MiB
    assert w.hwm_kib() < 128 * 1024


def test_cache_options_refused(tmp_path):
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.zeros(2))
    (tmp_path / "mnt").mkdir()
    r = run_npzfs("-o", "cache_size=lots", arc, tmp_path / "mnt")
    assert r.returncode == 1 and b"cache_size=lots" in r.stderr
    r = run_npzfs("-o", "cache_dir=%s" % (tmp_path / "nope"), arc, tmp_path / "mnt")
    assert r.returncode == 1 and b"nope" in r.stderr
    r = run_npzfs("--help")
    assert r.returncode == 0 and b"cache_size=SIZE" in r.stdout and b"cache_dir=DIR" in r.stdout
