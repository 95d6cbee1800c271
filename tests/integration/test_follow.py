"""test_follow.py - the mount follows its archive (issue 12, part A): another
program's np.savez (in place, or to a temporary file and os.replace),
zipfile append or removal is noticed within a second; files opened before
keep their version (or fail with EIO after an in-place rewrite, never a
mix); a half-written archive is never shown; our own commits are not taken
for another program's change.  No sleeps as synchronisation: every wait
polls with a deadline."""
import errno
import os
import zipfile

import numpy as np
import pytest

from conftest import SLOW, poll, read
from writeutil import getxattr, npy_bytes

WITHIN = 3 * SLOW          # seconds: the mount reflects a change within 1 s


def loads(path, want):
    """Does path (a .npy in the mount) load as want now?"""
    try:
        return np.array_equal(np.load(path), want)
    except (OSError, ValueError):
        return False


def text_has(path, value):
    try:
        return value in read(path).decode()
    except OSError:
        return False


def reloads(m):
    return m.stderr().count("loaded its new version")


BIG = np.arange(1 << 19, dtype=np.float64)          # 4 MiB


def test_savez_in_place(tmp_path, mount):
    """np.savez rewrites the archive in place: new values, new members,
    removed ones gone, views re-rendered; a file opened before reads the
    whole old content or fails with EIO, never a mix."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5), b=np.ones(3), big=BIG)
    m = mount(arc)
    old_big = npy_bytes(BIG)
    f = open(m / "big.npy", "rb", buffering=0)
    head = f.read(4096)
    np.savez(str(arc), a=np.arange(5) * 10, c=np.full(2, 7), big=BIG + 1)
    assert poll(lambda: loads(m / "a.npy", np.arange(5) * 10), WITHIN)
    assert loads(m / "c.npy", np.full(2, 7))
    assert loads(m / "big.npy", BIG + 1)
    assert not (m / "b.npy").exists() and not (m / "b.txt").exists()
    assert sorted(os.listdir(m)) == ["a.npy", "a.txt", "big.npy", "big.txt",
                                     "c.npy", "c.txt"]
    assert read(m / "a.txt").decode().split("\n")[1:6] == ["0", "10", "20", "30", "40"]
    try:
        rest = f.read()
        while True:
            more = f.read()
            if not more:
                break
            rest += more
        assert head + rest == old_big, "a mix of old and new bytes"
    except OSError as e:
        assert e.errno == errno.EIO
    finally:
        f.close()


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_replace_by_rename(tmp_path, mount, save):
    """Write to a temporary file and os.replace: the mount shows the new
    version; a file opened before reads the whole old version to the end."""
    arc = tmp_path / "a.npz"
    save(arc, a=np.arange(5), b=np.ones(3), big=BIG)
    m = mount(arc)
    f = open(m / "big.npy", "rb", buffering=0)
    head = f.read(4096)
    tmp = tmp_path / "new.npz"
    save(tmp, a=np.arange(6), c=np.zeros(4), big=BIG * 2)
    os.replace(tmp, arc)
    assert poll(lambda: loads(m / "a.npy", np.arange(6)), WITHIN)
    assert loads(m / "big.npy", BIG * 2)
    assert loads(m / "c.npy", np.zeros(4))
    assert not (m / "b.npy").exists()
    assert poll(lambda: text_has(m / "c.txt", "0.0"), WITHIN)
    rest = b""
    while True:
        more = f.read(1 << 20)
        if not more:
            break
        rest += more
    f.close()
    assert head + rest == npy_bytes(BIG)
    assert reloads(m) == 1


def test_zipfile_append(tmp_path, mount):
    """zipfile mode 'a' appends a member in place: it appears."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5))
    m = mount(arc)
    assert loads(m / "a.npy", np.arange(5))
    with zipfile.ZipFile(arc, "a") as z:
        z.writestr("added.npy", npy_bytes(np.arange(3) + 100))
    assert poll(lambda: loads(m / "added.npy", np.arange(3) + 100), WITHIN)
    assert loads(m / "a.npy", np.arange(5))
    assert poll(lambda: text_has(m / "added.txt", "102"), WITHIN)


def test_deleted_archive(tmp_path, mount):
    """The archive removed: files open read on, the listing stays, an edit
    fails at close, and the archive is not re-created."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5), big=BIG)
    m = mount(arc)
    f = open(m / "big.npy", "rb", buffering=0)
    head = f.read(4096)
    os.remove(arc)
    assert poll(lambda: (os.listdir(m), "was removed" in m.stderr())[1], WITHIN)
    assert sorted(os.listdir(m)) == ["a.npy", "a.txt", "big.npy", "big.txt"]
    rest = b""
    while True:
        more = f.read(1 << 20)
        if not more:
            break
        rest += more
    f.close()
    assert head + rest == npy_bytes(BIG)
    assert loads(m / "a.npy", np.arange(5))
    fd = os.open(m / "a.npy", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, npy_bytes(np.arange(4)))
    with pytest.raises(OSError) as exc:
        os.close(fd)
    assert exc.value.errno in (errno.ESTALE, errno.ENOENT)
    assert "removed" in getxattr(m / "a.npy", "error")
    assert not arc.exists()
    assert not any(p.name.startswith(".a.npz.npzfs") for p in tmp_path.iterdir())


def test_half_written_archive(tmp_path, mount):
    """A truncated zip at the path (numpy still writing) is never loaded:
    the mount keeps its version until the whole archive is there."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5))
    m = mount(arc)
    assert loads(m / "a.npy", np.arange(5))
    full = tmp_path / "full.npz"
    np.savez(full, a=np.arange(7), n=np.ones(2))
    data = full.read_bytes()
    with open(arc, "wb") as f:          # in place, as np.savez writes
        f.write(data[: len(data) // 2])
    seen = set()

    def retried():
        seen.update(os.listdir(m))
        return "cannot be loaded" in m.stderr()
    assert poll(retried, WITHIN)
    for _ in range(3):                  # more checks: still the old version
        seen.update(os.listdir(m))
    assert seen == {"a.npy", "a.txt"}
    with open(arc, "wb") as f:
        f.write(data)
    assert poll(lambda: loads(m / "a.npy", np.arange(7)), WITHIN)
    assert loads(m / "n.npy", np.ones(2))


def test_own_commit_not_a_change(tmp_path, mount):
    """An edit through the mount is not taken for another program's change:
    no reload, and the next edit commits too."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5), b=np.zeros(2))
    m = mount(arc)
    for k in range(3):
        np.save(m / "a.npy", np.arange(5) + k)
        assert loads(m / "a.npy", np.arange(5) + k)
        with np.load(arc) as z:
            assert np.array_equal(z["a"], np.arange(5) + k)
    os.chmod(arc, 0o640)                # only the ctime moves: no reload
    end = poll(lambda: (os.listdir(m), reloads(m))[1] > 0, 0.6 * SLOW)
    assert not end, m.stderr()
    np.save(m / "b.npy", np.ones(2))
    with np.load(arc) as z:
        assert np.array_equal(z["b"], np.ones(2))


def test_edit_across_replacement_fails(tmp_path, mount):
    """An edit open while another program replaced its member fails at
    close with ESTALE (logged, in user.npzfs.error); the mount shows the
    other program's version."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5))
    m = mount(arc)
    fd = os.open(m / "a.npy", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, npy_bytes(np.arange(4)))
    tmp = tmp_path / "new.npz"
    np.savez(tmp, a=np.arange(9))
    os.replace(tmp, arc)
    assert poll(lambda: "loaded its new version" in (os.listdir(m), m.stderr())[1], WITHIN)
    with pytest.raises(OSError) as exc:
        os.close(fd)
    assert exc.value.errno == errno.ESTALE
    assert "changed the archive" in getxattr(m / "a.npy", "error")
    assert loads(m / "a.npy", np.arange(9))
    with np.load(arc) as z:
        assert np.array_equal(z["a"], np.arange(9))


def test_rename_save_after_change_is_conflict(tmp_path, mount):
    """sed -i's way of saving: a temporary file written from the view, then
    renamed over it.  When another program changed the array after the
    temporary file was created, the rename fails with EBUSY and the
    temporary file's content is kept as NAME.txt.conflict; the array keeps
    the other program's values.  A temporary file created after the change
    is renamed as usual."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(5), b=np.zeros(2))
    m = mount(arc)
    mine = b"0\n1\n2\n3\n99\n"
    with open(m / "sedXYZ", "wb") as f:
        f.write(mine)
    tmp = tmp_path / "new.npz"
    np.savez(tmp, a=np.arange(5) * 7, b=np.zeros(2))
    os.replace(tmp, arc)
    assert poll(lambda: loads(m / "a.npy", np.arange(5) * 7), WITHIN)
    with pytest.raises(OSError) as exc:
        os.rename(m / "sedXYZ", m / "a.txt")
    assert exc.value.errno == errno.EBUSY
    assert read(m / "a.txt.conflict") == mine
    assert not (m / "sedXYZ").exists()
    assert "a.txt.conflict" in getxattr(m / "a.npy", "error")
    assert loads(m / "a.npy", np.arange(5) * 7)
    with np.load(arc) as z:
        assert np.array_equal(z["a"], np.arange(5) * 7)
    # the user's next save starts from what the mount shows now: it lands
    # (a new temporary name, as sed picks: the kernel may remember the old
    # one, whose rename it saw fail, for its entry timeout of 1 s)
    with open(m / "sedUVW", "wb") as f:
        f.write(b"0\n7\n14\n21\n100\n")
    os.rename(m / "sedUVW", m / "a.txt")
    # an array the other program did not change is not a conflict either
    with open(m / "sedB", "wb") as f:
        f.write(b"5\n6\n")
    np.savez(tmp, a=np.array([0, 7, 14, 21, 100]), b=np.zeros(2), c=np.ones(1))
    os.replace(tmp, arc)
    assert poll(lambda: (m / "c.npy").exists(), WITHIN)
    os.rename(m / "sedB", m / "b.txt")
    with np.load(arc) as z:
        assert np.array_equal(z["a"], [0, 7, 14, 21, 100])
        assert np.array_equal(z["b"], [5.0, 6.0])
        assert np.array_equal(z["c"], [1.0])


def test_emptied_directory_goes(tmp_path, mount):
    """A directory whose members another program removed vanishes from the
    mount; one still holding a member stays."""
    arc = tmp_path / "a.npz"
    np.savez(arc, **{"d/x": np.arange(3), "d/e/y": np.ones(2),
                     "k/z": np.zeros(1), "top": np.arange(2)})
    m = mount(arc)
    assert sorted(os.listdir(m)) == ["d", "k", "top.npy", "top.txt"]
    tmp = tmp_path / "new.npz"
    np.savez(tmp, **{"k/z": np.zeros(1), "top": np.arange(2)})
    os.replace(tmp, arc)
    assert poll(lambda: sorted(os.listdir(m)) == ["k", "top.npy", "top.txt"],
                WITHIN), os.listdir(m)
    assert not (m / "d").exists()
    assert loads(m / "k" / "z.npy", np.zeros(1))


def test_edit_across_in_place_rewrite_never_mixes(tmp_path, mount):
    """A copy-on-write edit of a stored member (one page written) while
    another program rewrites the archive in place with other values: the
    pages the edit did not write are gone, so reading them fails with EIO
    (never the new file's bytes), and the close fails with ESTALE saying
    why; the mount shows the other program's array."""
    arc = tmp_path / "a.npz"
    np.savez(arc, big=BIG)
    m = mount(arc)
    fd = os.open(m / "big.npy", os.O_RDWR)
    try:
        os.pwrite(fd, b"\0" * 8, 8192)
        np.savez(str(arc), big=BIG * 3)
        assert poll(lambda: (os.listdir(m), reloads(m))[1] > 0, WITHIN)
        assert os.pread(fd, 8, 8192) == b"\0" * 8
        with pytest.raises(OSError) as exc:
            os.pread(fd, 4096, 1 << 20)
        assert exc.value.errno == errno.EIO
    finally:
        with pytest.raises(OSError) as exc:
            os.close(fd)
    assert exc.value.errno == errno.ESTALE
    assert "rewritten in place" in getxattr(m / "big.npy", "error")
    assert not (m / "big.npy.conflict").exists()
    assert loads(m / "big.npy", BIG * 3)
    with np.load(arc) as z:
        assert np.array_equal(z["big"], BIG * 3)
