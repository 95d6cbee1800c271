"""test_inflight.py - what the mount does while a commit is in flight.

A commit holds the archive's commit lock (.NAME.lock beside it) while it
writes; a test process that holds that lock first keeps our commit in
flight for as long as it likes, deterministically.  Meanwhile lookups,
stat, readdir, xattrs and reads of every file must go on (README: a commit
is built without the namespace lock), and a write to the file being
committed waits for that commit and lands in the next one.
"""
import contextlib
import os
import threading
import time

import numpy as np

from conftest import SLOW
from writeutil import lock_holder, npy_bytes, render

WAIT = 30 * SLOW        # generous bound for "finishes"; never reached when OK
STILL = 0.3             # "is still blocked" after this long


@contextlib.contextmanager
def commit_lock_held(archive):
    """Hold the OFD commit lock of archive until the block ends."""
    holder = lock_holder(archive.parent / ("." + archive.name + ".lock"))
    try:
        yield
    finally:
        holder.stdin.close()
        holder.wait()


def in_thread(fn):
    out = {}

    def run():
        try:
            out["r"] = fn()
        except OSError as e:
            out["r"] = e.errno
    t = threading.Thread(target=run)
    t.start()
    return t, out


def write_close(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    fd = os.open(path, flags)
    os.write(fd, data)
    os.close(fd)
    return 0


def probe(m):
    """Everything a reader does, with the worst latency of one call."""
    worst, seen = 0.0, {}

    def timed(name, fn):
        nonlocal worst
        t0 = time.monotonic()
        seen[name] = fn()
        worst = max(worst, time.monotonic() - t0)
    timed("stat", lambda: os.stat(m / "b.npy").st_size)
    timed("ls", lambda: sorted(os.listdir(m)))
    timed("ls -l", lambda: [os.stat(m / n).st_size for n in os.listdir(m)])
    timed("xattr", lambda: os.getxattr(m / "b.npy", "user.npzfs.shape"))
    timed("read b", lambda: np.load(m / "b.npy"))
    timed("read b.txt", lambda: (m / "b.txt").read_text())
    timed("read a", lambda: np.load(m / "a.npy"))
    timed("new file", lambda: os.path.exists(m / "nothing.npy"))
    # an editor's temporary file (hidden: dropped at unmount)
    timed("create", lambda: open(m / ".swp", "w").close())
    return worst, seen


def test_readers_go_on_during_a_commit(tmp_path, mount):
    archive = tmp_path / "x.npz"
    b = np.arange(5, dtype=np.int64)
    np.savez(archive, a=np.zeros(3), b=b)
    m = mount(archive)
    with commit_lock_held(archive):
        committer, res = in_thread(
            lambda: write_close(m / "a.npy", npy_bytes(np.ones(3))))
        committer.join(STILL)
        assert committer.is_alive(), "the commit did not wait: %r" % res
        prober, got = in_thread(lambda: probe(m))
        prober.join(WAIT)
        assert not prober.is_alive(), "readers waited for the commit"
        assert committer.is_alive()
    committer.join(WAIT)
    assert res["r"] == 0
    worst, seen = got["r"]
    assert seen["stat"] == len(npy_bytes(b))
    assert seen["ls"] == ["a.npy", "a.txt", "b.npy", "b.txt"]
    assert seen["xattr"] == b"(5,)"
    assert np.array_equal(seen["read b"], b)
    assert seen["read b.txt"] == render(b)
    # the file being committed shows its new content
    assert np.array_equal(seen["read a"], np.ones(3))
    assert seen["new file"] is False
    assert os.path.exists(m / ".swp")
    assert worst < 5 * SLOW
    with np.load(archive) as z:
        assert np.array_equal(z["a"], np.ones(3))
        assert np.array_equal(z["b"], b)


def test_write_during_its_commit_waits_and_lands_next(tmp_path, mount):
    """A write to the file whose commit is in flight waits for that commit
    (the commit writes what was closed), then goes to the next commit."""
    archive = tmp_path / "x.npz"
    np.savez(archive, a=np.zeros(3), b=np.arange(5))
    m = mount(archive)
    with commit_lock_held(archive):
        committer, res = in_thread(
            lambda: write_close(m / "a.npy", npy_bytes(np.ones(3))))
        committer.join(STILL)
        assert committer.is_alive()
        writer, wres = in_thread(
            lambda: write_close(m / "a.npy", npy_bytes(np.full(3, 2.0)),
                                os.O_WRONLY))
        writer.join(STILL)
        assert writer.is_alive(), "the write did not wait for the commit"
        # other files are written meanwhile (and committed after)
        new_b = npy_bytes(np.array([7, 1, 2, 3, 4]))
        fd = []
        other, ores = in_thread(
            lambda: fd.append(os.open(m / "b.npy", os.O_WRONLY)) or
            os.write(fd[0], new_b))
        other.join(WAIT)
        assert not other.is_alive(), "a write to another file waited"
        assert committer.is_alive() and writer.is_alive()
    committer.join(WAIT)
    writer.join(WAIT)
    os.close(fd[0])
    assert res["r"] == 0 and wres["r"] == 0 and ores["r"] == len(new_b)
    with np.load(archive) as z:
        assert np.array_equal(z["a"], np.full(3, 2.0))
        assert np.array_equal(z["b"], [7, 1, 2, 3, 4])
