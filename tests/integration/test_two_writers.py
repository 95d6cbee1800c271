"""test_two_writers.py - two writers, nothing lost (issue 12, part B).

- Two daemons mounted on one archive close edits of different arrays at the
  same instant (a barrier): the later commit finds the archive changed, loads
  the other's version and commits again on top of it: every close() returns
  0 and the archive holds the last value of both sides.
- Both edit the same array: one wins; the other's close() fails with ESTALE,
  its content is kept byte for byte in the scratch file NAME.npy.conflict of
  its mount, the reason in user.npzfs.error, and the array shows the
  winner's version.  Every value written is in the archive or a .conflict.
- numpy replaces the archive (np.savez, a new member) while an edit is open
  in the mount: after close both are in the archive.
No sleeps as synchronisation: waits poll with a deadline."""
import errno
import os
import threading

import numpy as np

from conftest import SLOW, poll, read
from writeutil import close_at_barrier, getxattr, npy_bytes

ROUNDS_DIFF = 50
ROUNDS_SAME = 30
WITHIN = 3 * SLOW



def race(jobs):
    """Run close_at_barrier for each (path, data, key) at the same instant."""
    barrier, out = threading.Barrier(len(jobs)), {}
    ts = [threading.Thread(target=close_at_barrier, args=(p, d, barrier, out, k))
          for p, d, k in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert set(out) == {k for _, _, k in jobs}, out
    return out


def archive_arrays(arc):
    with np.load(arc) as z:
        return {k: z[k] for k in z.files}


def test_different_members_all_land(tmp_path, mount):
    arc = tmp_path / "shared.npz"
    np.savez(arc, a=np.zeros(8), b=np.zeros(8), c=np.arange(100.0))
    m1, m2 = mount(arc), mount(arc)
    a, b = np.zeros(8), np.zeros(8)
    for r in range(1, ROUNDS_DIFF + 1):
        a, b = a.copy(), b.copy()
        a[r % 8] = r
        b[r % 8] = -r
        out = race([(m1 / "a.npy", npy_bytes(a), "a"),
                    (m2 / "b.npy", npy_bytes(b), "b")])
        assert out == {"a": 0, "b": 0}, "round %d: %s\n%s\n%s" % (
            r, out, m1.stderr(), m2.stderr())
        got = archive_arrays(arc)
        assert np.array_equal(got["a"], a), "round %d: a lost" % r
        assert np.array_equal(got["b"], b), "round %d: b lost" % r
        assert np.array_equal(got["c"], np.arange(100.0))
    # both mounts show both sides' last values (the other's within 1 s)
    for m in (m1, m2):
        assert poll(lambda: np.array_equal(np.load(m / "a.npy"), a) and
                    np.array_equal(np.load(m / "b.npy"), b), WITHIN)
    assert not os.path.exists(m1 / "a.npy.conflict")
    assert not os.path.exists(m2 / "b.npy.conflict")


def test_same_member_one_wins_loser_kept(tmp_path, mount):
    arc = tmp_path / "shared.npz"
    np.savez(arc, x=np.zeros(4), y=np.arange(3))
    mounts = [mount(arc), mount(arc)]
    wins = [0, 0]
    for r in range(1, ROUNDS_SAME + 1):
        datas = [npy_bytes(np.array([r, 1.0, 0, 0])),
                 npy_bytes(np.array([r, 2.0, 0, 0]))]
        out = race([(mounts[i] / "x.npy", datas[i], i) for i in (0, 1)])
        assert sorted(out.values()) == [0, errno.ESTALE], "round %d: %s" % (r, out)
        w = 0 if out[0] == 0 else 1
        lose = 1 - w
        wins[w] += 1
        # the winner's value is the archive's
        got = archive_arrays(arc)
        assert np.array_equal(got["x"], np.array([r, 1.0 + w, 0, 0])), "round %d" % r
        assert np.array_equal(got["y"], np.arange(3))
        # the loser's bytes are kept, exactly, in its mount's .conflict file
        conflict = mounts[lose] / "x.npy.conflict"
        assert read(conflict) == datas[lose], "round %d" % r
        assert "x.npy.conflict" in getxattr(mounts[lose] / "x.npy", "error")
        # the loser's mount shows the winner's array
        assert poll(lambda: np.array_equal(np.load(mounts[lose] / "x.npy"),
                                           np.array([r, 1.0 + w, 0, 0])), WITHIN)
        # the user took the conflict's content: remove it
        os.unlink(conflict)
    assert wins[0] + wins[1] == ROUNDS_SAME
    for i in (0, 1):
        assert "x.npy.conflict" in mounts[i].stderr() or wins[1 - i] == 0


def test_conflict_of_text_view(tmp_path, mount):
    """A .txt edit that loses keeps its text in NAME.txt.conflict."""
    arc = tmp_path / "t.npz"
    np.savez(arc, v=np.arange(3))
    m1, m2 = mount(arc), mount(arc)
    fd = os.open(m1 / "v.txt", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"7\n8\n9\n")
    np.save(m2 / "v.npy", np.arange(5))
    try:
        os.close(fd)
        raise AssertionError("the losing close returned 0")
    except OSError as e:
        assert e.errno == errno.ESTALE
    assert read(m1 / "v.txt.conflict") == b"7\n8\n9\n"
    assert np.array_equal(np.load(m1 / "v.npy"), np.arange(5))
    with np.load(arc) as z:
        assert np.array_equal(z["v"], np.arange(5))
    os.unlink(m1 / "v.txt.conflict")


def test_rebase_onto_numpy_savez(tmp_path, mount):
    """np.savez replaces the archive (a new member) while an edit is open
    in the mount: after close both are present."""
    arc = tmp_path / "n.npz"
    np.savez(arc, a=np.arange(4), b=np.ones(3))
    m = mount(arc)
    fd = os.open(m / "a.npy", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, npy_bytes(np.arange(4) * 10))
    tmp = tmp_path / "new.npz"
    np.savez(tmp, a=np.arange(4), b=np.ones(3), z=np.full(2, 5))
    os.replace(tmp, arc)
    os.close(fd)                        # rebased: returns 0
    got = archive_arrays(arc)
    assert np.array_equal(got["a"], np.arange(4) * 10)
    assert np.array_equal(got["b"], np.ones(3))
    assert np.array_equal(got["z"], np.full(2, 5))
    assert np.array_equal(np.load(m / "z.npy"), np.full(2, 5))
    assert not os.path.exists(m / "a.npy.conflict")


def test_rebase_onto_numpy_in_place(tmp_path, mount):
    """np.savez rewrites the archive in place (same inode) with a changed
    other member while an edit is open: after close both are present."""
    arc = tmp_path / "p.npz"
    np.savez(arc, a=np.arange(4), b=np.ones(3))
    m = mount(arc)
    fd = os.open(m / "a.npy", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, npy_bytes(np.arange(4) * 3))
    np.savez(arc, a=np.arange(4), b=np.ones(3) * 2)
    os.close(fd)
    got = archive_arrays(arc)
    assert np.array_equal(got["a"], np.arange(4) * 3)
    assert np.array_equal(got["b"], np.ones(3) * 2)


def test_unmount_stores_scratch_on_top(tmp_path, mount):
    """Scratch files stored at unmount land on top of the other side's
    commits; a name the other side stored meanwhile gets a suffix."""
    import zipfile
    arc = tmp_path / "u.npz"
    np.savez(arc, a=np.zeros(2), b=np.zeros(2))
    m1, m2 = mount(arc), mount(arc)
    (m1 / "notes.md").write_bytes(b"one")
    (m2 / "notes.md").write_bytes(b"two")
    np.save(m1 / "a.npy", np.ones(2))
    np.save(m2 / "b.npy", np.full(2, 2.0))     # rebased onto m1's commit
    np.save(m1 / "a.npy", np.full(2, 3.0))     # rebased onto m2's commit
    for m in (m1, m2):
        problems = m.stop()
        assert not problems, "\n".join(problems)
    with zipfile.ZipFile(arc) as z:
        assert z.read("notes.md") == b"one"
        assert z.read("notes.md.2") == b"two"
    got = archive_arrays(arc)
    assert np.array_equal(got["a"], np.full(2, 3.0))
    assert np.array_equal(got["b"], np.full(2, 2.0))


def test_rename_and_unlink_replayed(tmp_path, mount):
    """A rename onto an array (sed -i's way) and an unlink whose commits
    find another mount's commit of other members are replayed on top."""
    arc = tmp_path / "r.npz"
    np.savez(arc, a=np.arange(3), b=np.zeros(2), c=np.ones(2), d=np.ones(1))
    m1, m2 = mount(arc), mount(arc)
    (m1 / "tmpsed").write_bytes(b"5\n6\n7\n")
    np.save(m2 / "b.npy", np.full(2, 4.0))
    os.rename(m1 / "tmpsed", m1 / "a.txt")
    np.save(m2 / "c.npy", np.full(2, 9.0))
    os.unlink(m1 / "d.npy")
    got = archive_arrays(arc)
    assert np.array_equal(got["a"], np.array([5, 6, 7]))
    assert np.array_equal(got["b"], np.full(2, 4.0))
    assert np.array_equal(got["c"], np.full(2, 9.0))
    assert "d" not in got
    assert poll(lambda: np.array_equal(np.load(m1 / "b.npy"), np.full(2, 4.0)), WITHIN)
