"""test_zran.py - deflated members numpy wrote (one deflate stream, no SOZip
index) are seekable through access points and cached in blocks, inside the
budget (SPEC.md "-o cache_size"): random reads of a member eight times the
cache are right and the cache files stay within cache_size; damaged data
is EIO."""
import errno
import io
import os
import random
import threading
import zipfile

import numpy as np
import pytest

from conftest import SANITIZED
from test_cache import CacheWatch

MiB = 1 << 20
CACHE = 8 * MiB


def npy_bytes(a):
    f = io.BytesIO()
    np.lib.format.write_array(f, a)
    return f.getvalue()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 64 MiB int32 member (many dynamic blocks, compresses 7:1, made in
    a few seconds) and a small one, by np.savez_compressed."""
    n = 16 * MiB
    rng = np.random.default_rng(8)
    a = (np.arange(n, dtype="i4") // 5) + rng.integers(0, 2, n, dtype="i4")
    p = tmp_path_factory.mktemp("zran") / "big.npz"
    np.savez_compressed(p, big=a, small=np.arange(1000))
    return p, npy_bytes(a)


@pytest.fixture
def cache_dir(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    return d


def random_reads(path, expect, count, seed, drop=False):
    """count preads at random offsets (mostly 4 KiB, some long), each
    compared to the expected bytes.  drop: first drop the kernel's cached
    pages, so that the daemon answers every one."""
    rnd = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    try:
        for k in range(count):
            if drop:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            off = rnd.randrange(0, len(expect) + 100)
            n = 4096 if k % 8 else rnd.randrange(1, 3 * MiB)
            assert os.pread(fd, n, off) == expect[off:off + n], (off, n)
    finally:
        os.close(fd)


def test_random_reads_in_small_cache(big, mount, cache_dir):
    """cache_size=8M, a 64 MiB member: random reads before and after a
    sequential np.load are right, the cache files never pass 8 MiB."""
    arc, expect = big
    m = mount(arc, "-o", "ro,cache_size=8M,cache_dir=%s" % cache_dir)
    path = m / "big.npy"
    with CacheWatch(m.proc.pid, cache_dir, CACHE) as w:
        random_reads(path, expect, 40, 1)
        with open(path, "rb") as f:
            assert f.read() == expect
        random_reads(path, expect, 60 if SANITIZED else 150, 2, drop=True)
        assert np.array_equal(np.load(m / "small.npy"), np.arange(1000))
    assert w.samples > 0
    assert 0 < w.peak <= CACHE, "cache reached %d KiB" % (w.peak >> 10)


def test_concurrent_readers(big, mount, cache_dir):
    """A sequential reader and random readers of the same member at once
    (the sequential one with read-ahead) all get the right bytes."""
    arc, expect = big
    m = mount(arc, "-o", "ro,cache_size=8M,cache_dir=%s" % cache_dir)
    path = m / "big.npy"
    errors = []

    def seq():
        try:
            with open(path, "rb") as f:
                got = f.read()
            if got != expect:
                errors.append("sequential read differs")
        except Exception as e:      # reported below
            errors.append(repr(e))

    def rnd(seed):
        try:
            random_reads(path, expect, 20 if SANITIZED else 60, seed, drop=True)
        except Exception as e:      # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=seq)] + \
        [threading.Thread(target=rnd, args=(s,)) for s in (3, 4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A numpy archive whose 16 MiB member has 1 KiB of garbage two thirds
    into its deflate data."""
    n = 4 * MiB
    rng = np.random.default_rng(9)
    a = (np.arange(n, dtype="i4") // 3) + rng.integers(0, 3, n, dtype="i4")
    p = tmp_path_factory.mktemp("zran-bad") / "bad.npz"
    np.savez_compressed(p, big=a, small=np.arange(10))
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("big.npy")
    h = info.header_offset
    off = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + \
        int.from_bytes(raw[h + 28:h + 30], "little")
    mid = off + info.compress_size * 2 // 3
    raw[mid:mid + 1024] = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(raw))
    return p, npy_bytes(a)


def test_damaged_member_eio(damaged, mount, cache_dir):
    arc, expect = damaged
    m = mount(arc, "-o", "ro,cache_size=8M,cache_dir=%s" % cache_dir)
    fd = os.open(m / "big.npy", os.O_RDONLY)
    try:
        # the start reads (before the damage), the end does not
        assert os.pread(fd, 4096, 0) == expect[:4096]
        with pytest.raises(OSError) as exc:
            os.pread(fd, 4096, len(expect) - 5000)
        assert exc.value.errno == errno.EIO
    finally:
        os.close(fd)
    with pytest.raises(OSError) as exc:
        with open(m / "big.npy", "rb") as f:
            f.read()
    assert exc.value.errno == errno.EIO
    assert np.array_equal(np.load(m / "small.npy"), np.arange(10))
    assert "big.npy" in m.stderr()
