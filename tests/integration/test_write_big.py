"""test_write_big.py - writes larger than the daemon's in-memory bound
(8 MiB, then a spill file): in-place patches and mmap writes to a 16 MB
member, np.save of a new 24 MB array, a 9 MB text file, and sed -i over the
view of an 8 MB array; on a stored and on a deflated archive."""
import os

import numpy as np
import pytest

from writeutil import (COMPRESSIONS, Snapshot, check_archive, data_offset,
                       default_new_method, make_archive, read, run, unmount)

N = 2_000_000


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_big_writes(tmp_path, mount, compression):
    d = tmp_path / "data"
    d.mkdir()
    # (data that deflates fast: this runs under sanitizers too)
    b = (np.arange(N) % 1000).astype(np.float64)        # 16 MB
    t = np.arange(N // 2) % 1000                         # 8 MB, a 3.9 MB text view
    arc = make_archive(d / "a.npz", compression, {"small": np.arange(3), "b": b, "t": t})
    before = Snapshot(arc)
    m = mount(arc)

    # dd into the end of the 16 MB member
    off = data_offset(read(m / "b.npy")[:4096]) + (N - 1) * 8
    (tmp_path / "p.bin").write_bytes(np.float64(-1.0).tobytes())
    run(["dd", "if=%s" % (tmp_path / "p.bin"), "of=%s" % (m / "b.npy"), "bs=8",
         "seek=%d" % off, "oflag=seek_bytes", "conv=notrunc", "status=none"])
    want_b = b.copy()
    want_b[-1] = -1.0
    # mmap writes at both ends
    a = np.load(m / "b.npy", mmap_mode="r+")
    a[0] = 0.5
    a[N // 2] = 1e300
    a.flush()
    del a
    want_b[0], want_b[N // 2] = 0.5, 1e300
    # np.save of a new 24 MB array
    c = (np.arange(3_000_000) % 1000) * 0.5
    np.save(m / "c.npy", c)
    # a 9 MB text file
    run("yes 7 | head -n 4500000 > %s" % (m / "s.txt"))
    # sed -i over the view of t: change one line, delete the last
    run(["sed", "-i", "-e", "500001s/.*/-5/", "-e", "$d", m / "t.txt"])
    want_t = t[:-1].copy()
    want_t[500000 - 1] = -5

    expect = dict(changed={"b": want_b, "t": want_t},
                  added={"c": c, "s": np.full(4_500_000, 7)},
                  new_method=default_new_method(before))
    check_archive(arc, before, **expect)
    assert sorted(os.listdir(d)) == [".a.npz.lock", "a.npz"]
    unmount(m)
    check_archive(arc, before, **expect)
