"""test_safety.py - nothing lost with two writers, no wrong bytes after the
archive changed behind the mount (issue 8, part 1; SPEC.md "Concurrency").

- Two daemons mounted on one archive close edits of different arrays at the
  same instant (a barrier), for 200 rounds, on local disk and on a slower
  FUSE passthrough (bindfs, as sshfs or NFS would be): every close() that
  returned 0 has its change in the archive (since issue 12 part B the later
  one loads the other's version and commits on top of it: both return 0).
- After np.savez rewrites the archive in place, reads through the mount fail
  with EIO (never bytes of neither version); after a replacement by rename
  or an unlink they keep returning the old bytes.
"""
import errno
import os
import subprocess
import threading

import numpy as np
import pytest

from conftest import SANITIZED, Mount, poll, read
from writeutil import close_at_barrier, lock_holder

ROUNDS = 50 if SANITIZED else 200      # the statistics: without the sanitizers


def npy_bytes(arr):
    import io
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


@pytest.fixture
def slow_dir(tmp_path):
    """A bindfs (FUSE passthrough) view of a directory, always unmounted."""
    src, dst = tmp_path / "slow_src", tmp_path / "slow"
    src.mkdir()
    dst.mkdir()
    subprocess.run(["bindfs", "--no-allow-other", str(src), str(dst)], check=True)
    try:
        yield dst
    finally:
        poll(lambda: subprocess.run(["fusermount3", "-u", str(dst)],
                                    capture_output=True).returncode == 0, 10, step=0.1)



def two_writer_rounds(tmp_path, archive_dir, rounds):
    archive = archive_dir / "shared.npz"
    a0, b0 = np.zeros(64), np.zeros(64)
    np.savez(archive, a=a0, b=b0, c=np.arange(1000.0))
    mnts = [tmp_path / "w1", tmp_path / "w2"]
    losses, failed = [], 0
    for r in range(1, rounds + 1):
        m1 = Mount(archive, mnts[0], [], tmp_path).start()
        m2 = Mount(archive, mnts[1], [], tmp_path).start()
        try:
            a, b = a0.copy(), b0.copy()
            a[r % 64] = r
            b[r % 64] = -r
            barrier, out = threading.Barrier(2), {}
            ts = [threading.Thread(target=close_at_barrier,
                                   args=(m1 / "a.npy", npy_bytes(a), barrier, out, "a")),
                  threading.Thread(target=close_at_barrier,
                                   args=(m2 / "b.npy", npy_bytes(b), barrier, out, "b"))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
        finally:
            problems = m1.stop() + m2.stop()
        assert not problems, "\n".join(problems)
        assert set(out) == {"a", "b"}, out
        assert all(v in (0, errno.ESTALE) for v in out.values()), out
        assert 0 in out.values(), "round %d: neither commit landed: %s" % (r, out)
        with np.load(archive) as z:
            got = {k: z[k] for k in ("a", "b", "c")}
        assert np.array_equal(got["c"], np.arange(1000.0))
        for key, want in (("a", a), ("b", b)):
            if out[key] == 0 and not np.array_equal(got[key], want):
                losses.append((r, key))
        failed += sum(1 for v in out.values() if v)
        # the next round starts from what is on disk
        a0, b0 = got["a"], got["b"]
    return losses, failed


def test_two_writers_local(tmp_path):
    losses, failed = two_writer_rounds(tmp_path, tmp_path, ROUNDS)
    assert losses == [], "%d silent losses in %d rounds" % (len(losses), ROUNDS)


def test_two_writers_slow_fs(tmp_path, slow_dir):
    losses, failed = two_writer_rounds(tmp_path, slow_dir, ROUNDS)
    assert losses == [], "%d silent losses in %d rounds" % (len(losses), ROUNDS)


def test_lock_file_beside_archive(tmp_path, mount):
    """The lock is a hidden file beside the archive; a stale one (its holder
    killed) blocks nobody."""
    archive = tmp_path / "x.npz"
    np.savez(archive, a=np.zeros(3))
    lock = tmp_path / ".x.npz.lock"
    # a daemon killed while holding the lock leaves the file behind
    holder = lock_holder(lock)
    holder.kill()
    holder.wait()
    assert lock.exists()
    m = mount(archive)
    with open(m / "a.npy", "wb") as f:
        np.save(f, np.ones(3))
    with np.load(archive) as z:
        assert np.array_equal(z["a"], np.ones(3))
    assert lock.exists()


def test_commit_waits_for_lock(tmp_path, mount):
    """A commit waits while another process holds the lock, then finds the
    archive changed by that process (another member): it loads that version
    and commits on top of it (issue 12 part B): both changes land."""
    archive = tmp_path / "x.npz"
    np.savez(archive, a=np.zeros(3), b=np.zeros(3))
    m = mount(archive)
    holder = lock_holder(
        tmp_path / ".x.npz.lock",
        ["import numpy as np",
         "np.savez(sys.argv[2] + '.tmp.npz', a=np.zeros(3), b=np.full(3, 7.0))",
         "os.replace(sys.argv[2] + '.tmp.npz', sys.argv[2])"], [archive])
    try:
        out = {}
        t = threading.Thread(target=lambda: out.update(r=_write_close(m / "a.npy", np.ones(3))))
        t.start()
        t.join(0.3)
        assert t.is_alive(), "the commit did not wait for the lock"
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        t.join(30)
        assert out["r"] == 0
    finally:
        holder.stdin.close()
        holder.wait()
    with np.load(archive) as z:
        assert np.array_equal(z["b"], np.full(3, 7.0))
        assert np.array_equal(z["a"], np.ones(3))


def _write_close(path, arr):
    # (not np.save into a file object: its tofile() closes a dup of the
    # descriptor, and so commits, without releasing the GIL)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, npy_bytes(arr))
    try:
        os.close(fd)
        return 0
    except OSError as e:
        return e.errno


# ---------------------------------------------------------------- stale reads

def read_or_none(p):
    try:
        return read(p)
    except OSError:
        return None


def _archive(path, compressed, **arrays):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_rewrite_in_place_reads_fail(tmp_path, mount, compressed):
    """np.savez truncates and rewrites the archive file: the mount's offsets
    now point into other bytes, so reads fail with EIO and one log line."""
    archive = tmp_path / "x.npz"
    rng = np.random.default_rng(1)
    old = {"a": rng.random(100000), "b": rng.random(50000), "c": np.arange(10)}
    _archive(archive, compressed, **old)
    m = mount(archive)
    assert read(m / "c.npy") == npy_bytes(old["c"])
    new = {"b": rng.random(50000), "a": rng.random(100000), "c": np.arange(10) + 1}
    _archive(archive, compressed, **new)     # same inode, new content
    want = {k + ".npy": npy_bytes(v) for k, v in new.items()}
    eio = 0
    for rel in ("a.npy", "b.npy", "c.npy", "a.txt"):
        try:
            got = read(m / rel)
        except OSError as e:
            assert e.errno == errno.EIO, rel
            eio += 1
            continue
        # the mount noticed the rewrite first (issue 12: it follows its
        # archive) and shows the new version: never old bytes, never a mix
        if rel in want:
            assert got == want[rel], rel
    if eio:
        assert m.stderr().count("rewritten in place") == 1
    assert poll(lambda: read_or_none(m / "c.npy") == want["c.npy"], 5)


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_replace_or_unlink_keeps_old_bytes(tmp_path, mount, how):
    """A replacement by rename or an unlink leaves the daemon's file as it
    was: reads return the old bytes."""
    archive = tmp_path / "x.npz"
    rng = np.random.default_rng(2)
    old = {"a": rng.random(100000), "c": np.arange(10)}
    np.savez_compressed(archive, **old)
    m = mount(archive)
    if how == "rename":
        new = {"a": np.zeros(5), "c": np.ones(2)}
        np.savez(tmp_path / "new.npz", **new)
        os.replace(tmp_path / "new.npz", archive)
        # the old version until the mount notices (at most every 200 ms),
        # then the new one (issue 12), each whole
        for k in ("a", "c"):
            assert read(m / (k + ".npy")) in (npy_bytes(old[k]), npy_bytes(new[k])), k
        assert poll(lambda: read_or_none(m / "c.npy") == npy_bytes(new["c"]), 5)
        return
    os.unlink(archive)
    assert read(m / "a.npy") == npy_bytes(old["a"])
    assert read(m / "c.npy") == npy_bytes(old["c"])
    assert read(m / "c.txt").decode().splitlines()[1:] == [str(i) for i in range(10)]
