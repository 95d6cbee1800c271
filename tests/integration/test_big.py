"""test_big.py - a 200 MB float64 member (stored and deflated): full reads,
random and concurrent preads, mmap; and a text view of more than 64 MiB of
array data, whose size stat knows only once it is opened."""
import hashlib
import os
import random
import subprocess
import threading
import zipfile

import numpy as np
import pytest

import archives

N = 25_000_000                  # 200 MB of float64
LONG_N, LONG_W = 17_000, 1000   # U1000: 68 MB > 64 MiB of array data
CHUNK = 1 << 20


def big_array():
    a = np.zeros(N)
    a[::8] = np.arange(len(a[::8]))     # every 64 bytes unique: misplaced reads show
    a[:1_000_000] = np.random.default_rng(3).standard_normal(1_000_000)
    return a


def long_strings():
    return np.array(["%d:%s" % (i, "x" * (i % LONG_W - 8)) if i % LONG_W > 8 else str(i)
                     for i in range(LONG_N)], dtype="U%d" % LONG_W)


def sha256(f):
    h = hashlib.sha256()
    for block in iter(lambda: f.read(CHUNK), b""):
        h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The .npy bytes numpy writes for the big array, as a plain file."""
    p = tmp_path_factory.mktemp("bigref") / "big.npy"
    np.save(p, big_array())
    return p


@pytest.fixture(scope="module", params=archives.COMPRESSIONS)
def big(request, ref, tmp_path_factory, module_mount):
    archive = archives.savez(tmp_path_factory.mktemp("big") / "big.npz",
                             {"big": np.load(ref, mmap_mode="r"), "longtext": long_strings()},
                             request.param)
    return archive, module_mount(archive)


def test_random_preads(big, ref):
    """Cold random access first: 200 preads of 4 KiB at random offsets."""
    _, m = big
    size = os.stat(ref).st_size
    rnd = random.Random(11)
    offsets = [rnd.randrange(size) for _ in range(196)] + [0, size - 4096, size - 100, size]
    rnd.shuffle(offsets)
    with open(ref, "rb") as r, open(m / "big.npy", "rb") as f:
        for off in offsets:
            assert os.pread(f.fileno(), 4096, off) == os.pread(r.fileno(), 4096, off), off


def test_concurrent_preads(big, ref):
    _, m = big
    size = os.stat(ref).st_size
    errors = []

    def worker(seed):
        rnd = random.Random(seed)
        with open(ref, "rb") as r, open(m / "big.npy", "rb") as f:
            for _ in range(100):
                off = rnd.randrange(size)
                n = rnd.choice([1, 100, 4096, 65536, 300000])
                if os.pread(f.fileno(), n, off) != os.pread(r.fileno(), n, off):
                    errors.append((seed, off, n))
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_full_read_sha256(big, ref):
    archive, m = big
    with zipfile.ZipFile(archive) as z, z.open("big.npy") as member:
        want = sha256(member)
        assert os.stat(m / "big.npy").st_size == z.getinfo("big.npy").file_size
    with open(ref, "rb") as r:
        assert sha256(r) == want
    with open(m / "big.npy", "rb") as f:
        assert sha256(f) == want


def test_mmap(big):
    _, m = big
    a = np.load(m / "big.npy", mmap_mode="r")
    want = big_array()
    idx = np.random.default_rng(4).integers(0, N, 1000)
    assert a.shape == (N,) and a.dtype == np.float64
    assert np.array_equal(a[idx], want[idx])
    assert np.array_equal(a[-1000:], want[-1000:])
    del a


def test_large_view_size_after_open(big):
    """More than 64 MiB of array data: rendered at open; fstat and stat after
    the open give the exact size, so tail and wc -c are right."""
    _, m = big
    arr = long_strings()
    head = "# {'descr': '<U%d', 'fortran_order': False, 'shape': (%d,), }\n" % (LONG_W, LONG_N)
    want = (head + "".join('"%s"\n' % s for s in arr)).encode()
    p = m / "longtext.txt"
    with open(p, "rb") as f:
        assert os.fstat(f.fileno()).st_size == len(want)
        assert os.stat(p).st_size == len(want)
        r = subprocess.run(["wc", "-c", str(p)], capture_output=True, text=True)
        assert int(r.stdout.split()[0]) == len(want)
        r = subprocess.run(["tail", "-n", "2", str(p)], capture_output=True)
        assert r.stdout == b"".join(want.splitlines(keepends=True)[-2:])
        got = f.read()
    assert got == want
