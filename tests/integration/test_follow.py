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
