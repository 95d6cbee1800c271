"""test_write_errors.py - rejected writes and failed commits (SPEC.md
"Writing"): invalid content fails close() or rename() with EINVAL and leaves
the archive byte-identical, with the reason in user.npzfs.error and the log;
a commit that does not fit on the disk fails with ENOSPC, leaves the archive
intact and no temporary file, and can be retried."""
import errno
import os
import random
import subprocess
import zipfile

import numpy as np
import pytest

from conftest import tmpfs

from writeutil import (COMPRESSIONS, Snapshot, base_arrays, check_archive, check_views,
                       close_errno, getxattr, make_archive, npy_bytes, poll, read, render,
                       run, unmount, write_file)

A = base_arrays()


def _header(name):
    return render(A[name]).split("\n", 1)[0].encode() + b"\n"


# (view written, content, what the reason must contain)
INVALID = {
    "garbage_text": ("x.txt", b"garbage\n", "line 1"),
    "bad_token": ("x.txt", b"0.5\n1.0\n1.5x\n", "line 3"),
    "bad_token_after_header": ("x.txt", _header("x") + b"0.5\n1.0\nabc\n", "line 4"),
    "uint8_too_big": ("u.txt", b"0\n256\n2\n", "line 2"),
    "uint8_negative": ("u.txt", b"-1\n", "line 1"),
    "int64_overflow": ("n.txt", b"1\n2\n9223372036854775808\n", "line 3"),
    "ragged_rows": ("m.txt", b"1 2 3 4\n5 6\n7 8 9 10\n", "line 2"),
    "ragged_after_header": ("m.txt", _header("m") + b"1 2 3 4\n5 6 7 8\n9 10 11\n", "line 4"),
    "unterminated_string": ("s.txt", b'"alpha"\n"beta\n', "line 2"),
    "npy_data_short": ("x.npy", npy_bytes(A["x"])[:-8], None),
    "npy_data_long": ("x.npy", npy_bytes(A["x"]) + bytes(8), None),
    "npy_header_only": ("m.npy", npy_bytes(A["m"])[:128], None),
    "npy_garbage": ("x.npy", random.Random(5).randbytes(300), None),
    "npy_text": ("n.npy", b"1\n2\n3\n", None),
}


class ErrCase:
    def __init__(self, tmp_path, mount, compression):
        self.dir = tmp_path / "data"
        self.dir.mkdir()
        self.archive = make_archive(self.dir / "a.npz", compression)
        self.before = Snapshot(self.archive)
        self.m = mount(self.archive)

    def __truediv__(self, rel):
        return self.m / rel

    def unchanged(self):
        """The archive file is byte-identical, nothing lies beside it."""
        assert Snapshot(self.archive).sha256 == self.before.sha256
        assert sorted(os.listdir(self.dir)) in (["a.npz"], [".a.npz.lock", "a.npz"])

    def rejected(self, name, view, where=None):
        """Array `name` was rejected for a write of `view`: the archive is
        unchanged, the reason is in user.npzfs.error of both views and in
        the log, and the views show the unchanged array."""
        self.unchanged()
        msgs = {getxattr(self / (name + ext), "error") for ext in (".npy", ".txt")}
        assert len(msgs) == 1, msgs
        msg = msgs.pop()
        assert msg and "\n" not in msg.rstrip("\n"), repr(msg)
        assert view in msg, msg
        if where:
            assert where in msg, msg
        assert poll(lambda: msg.rstrip("\n") in self.m.stderr(), 5), self.m.stderr()
        check_views(self.m, name, A[name])
        return msg

    def finish(self):
        self.unchanged()
        unmount(self.m)
        self.unchanged()


@pytest.fixture(params=COMPRESSIONS)
def ecase(request, tmp_path, mount):
    return ErrCase(tmp_path, mount, request.param)


@pytest.mark.parametrize("case_id", sorted(INVALID))
def test_invalid_content_fails_close(ecase, case_id):
    view, content, where = INVALID[case_id]
    with pytest.raises(OSError) as exc:
        write_file(ecase / view, content)       # write() succeeds, close() fails
    assert exc.value.errno == errno.EINVAL
    ecase.rejected(view[:-4], view, where)
    ecase.finish()


def test_invalid_content_os_close(ecase):
    assert close_errno(ecase / "x.txt", b"1.0\n2.0\nnope\n") == errno.EINVAL
    ecase.rejected("x", "x.txt", "line 3")
    ecase.finish()


def test_valid_write_after_rejection(ecase):
    with pytest.raises(OSError) as exc:
        write_file(ecase / "u.txt", b"1000\n")
    assert exc.value.errno == errno.EINVAL
    ecase.rejected("u", "u.txt", "line 1")
    write_file(ecase / "u.txt", b"4\n5\n")
    u = np.array([4, 5], dtype=np.uint8)
    check_archive(ecase.archive, ecase.before, changed={"u": u})
    check_views(ecase.m, "u", u)
    unmount(ecase.m)
    check_archive(ecase.archive, ecase.before, changed={"u": u})


@pytest.mark.parametrize("rel,content", [
    ("new.npy", b"not an npy file\n"),
    ("new.txt", b"1 2\n3\n"),
    ("new2.txt", b"1\nfoo bar\n"),
])
def test_invalid_new_file(ecase, rel, content):
    """A rejected new array: the message says so, why, and where the
    content is (still in the mount under its name); the archive is
    unchanged until unmount, which stores the content as NAME.rejected."""
    with pytest.raises(OSError) as exc:
        write_file(ecase / rel, content)
    assert exc.value.errno == errno.EINVAL
    msg = getxattr(ecase / rel, "error")
    assert msg.startswith("new array %s rejected: " % rel), msg
    assert "not stored in the archive: %s stays in the mount" % rel in msg, msg
    assert "stored as member %s.rejected at unmount" % rel in msg, msg
    assert "never written" not in ecase.m.stderr()
    assert read(ecase / rel) == content
    ecase.unchanged()
    unmount(ecase.m)
    assert "%s: rejected content stored as member %s.rejected" % (rel, rel) in ecase.m.stderr()
    check_archive(ecase.archive, ecase.before, plain={rel + ".rejected": content})


def test_invalid_new_file_removed(ecase):
    """Removed before unmount, a rejected new file leaves no trace."""
    with pytest.raises(OSError) as exc:
        write_file(ecase / "new.txt", b"1\nfoo bar\n")
    assert exc.value.errno == errno.EINVAL
    os.unlink(ecase / "new.txt")
    ecase.finish()


def test_invalid_new_file_fixed(ecase):
    """Rewritten with valid content, a rejected new file becomes the array."""
    with pytest.raises(OSError):
        write_file(ecase / "new.txt", b"1\nfoo bar\n")
    write_file(ecase / "new.txt", b"1\n2\n")
    unmount(ecase.m)
    check_archive(ecase.archive, ecase.before, added={"new": np.array([1, 2])})


def test_truncate_npy_invalid(ecase):
    """truncate(1) cuts x.npy inside its data: close fails, truncate says
    so with exit status 1."""
    r = run(["truncate", "-s", "100", ecase / "x.npy"], ok=False)
    assert r.returncode == 1, r
    assert b"Invalid argument" in r.stderr, r.stderr
    ecase.rejected("x", "x.npy")
    ecase.finish()


def test_truncate_npy_by_path_invalid(ecase):
    with pytest.raises(OSError) as exc:
        os.truncate(ecase / "m.npy", 140)
    assert exc.value.errno == errno.EINVAL
    ecase.rejected("m", "m.npy")
    ecase.finish()


def test_truncate_npy_to_zero_invalid(ecase):
    with pytest.raises(OSError) as exc:
        fd = os.open(ecase / "x.npy", os.O_RDWR)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
    assert exc.value.errno == errno.EINVAL
    ecase.rejected("x", "x.npy")
    ecase.finish()


def test_rename_invalid_scratch_onto_view(ecase):
    write_file(ecase / "edit.tmp", b"1\n2\nthree\n")
    with pytest.raises(OSError) as exc:
        os.rename(ecase / "edit.tmp", ecase / "x.txt")
    assert exc.value.errno == errno.EINVAL
    assert read(ecase / "edit.tmp") == b"1\n2\nthree\n"        # nothing moved
    ecase.rejected("x", "x.txt", "line 3")
    write_file(ecase / "bad.tmp", b"\x93NUMPY garbage")
    with pytest.raises(OSError) as exc:
        os.rename(ecase / "bad.tmp", ecase / "y.npy")
    assert exc.value.errno == errno.EINVAL
    assert not (ecase / "y.npy").exists() and not (ecase / "y.txt").exists()
    os.unlink(ecase / "edit.tmp")
    os.unlink(ecase / "bad.tmp")
    ecase.finish()


def test_sed_i_invalid(ecase):
    """sed -i making the text invalid: its rename fails, sed exits 4."""
    r = run(["sed", "-i", "2s/.*/abc/", ecase / "x.txt"], ok=False)
    assert r.returncode == 4, r
    assert b"Invalid argument" in r.stderr, r.stderr
    ecase.rejected("x", "x.txt", "line 2")
    assert sorted(os.listdir(ecase.m.path)) == sorted(n + e for n in A for e in (".npy", ".txt"))
    ecase.finish()


def test_shell_redirect_invalid(ecase):
    """bash ignores close errors: `echo > view` exits 0, but the array is
    unchanged and the reason is kept."""
    run(["bash", "-c", "echo 300 > %s" % (ecase / "u.txt")])
    ecase.rejected("u", "u.txt", "line 1")
    ecase.finish()


# ---------------------------------------------------------------- disk full

@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs, always unmounted afterwards.  Request it before
    `mount` so that the FUSE mount on top of it goes first."""
    with tmpfs(tmp_path / "small", "16m") as d:
        yield d


def fill(path, keep_free):
    """Write a file at path so that only about keep_free bytes stay free."""
    st = os.statvfs(path.parent)
    size = st.f_bavail * st.f_frsize - keep_free
    with open(path, "wb") as f:
        f.write(bytes(size))


def read_view(path):
    """Read a file; (bytes, errno of its close or 0)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
    except BaseException:
        os.close(fd)
        raise
    try:
        os.close(fd)
    except OSError as e:
        return b"".join(chunks), e.errno
    return b"".join(chunks), 0


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_disk_full(small_fs, mount, compression):
    big = np.random.default_rng(3).standard_normal(750_000)      # 6 MB, little deflate gain
    arc = make_archive(small_fs / "a.npz", compression, {"big": big, "x": A["x"]})
    before = Snapshot(arc)
    fill(small_fs / "filler", os.path.getsize(arc) // 2)
    m = mount(arc)

    def no_temp_left(want=("a.npz", "filler")):
        # (a commit retried by an asynchronous RELEASE may be under way;
        # the commit lock file stays)
        return poll(lambda: [n for n in sorted(os.listdir(small_fs))
                             if n != ".a.npz.lock"] == list(want), 10)

    new_text = b"1.0\n2.0\n"
    with pytest.raises(OSError) as exc:
        write_file(m / "x.txt", new_text)
    assert exc.value.errno == errno.ENOSPC
    assert Snapshot(arc).sha256 == before.sha256
    assert no_temp_left()
    # An fsync fails the same way.
    fd = os.open(m / "x.txt", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as exc:
            os.fsync(fd)
        assert exc.value.errno == errno.ENOSPC
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert Snapshot(arc).sha256 == before.sha256
    assert no_temp_left()
    # Namespace changes fail the same way and leave the mount as it was.
    for op, args in ((os.unlink, (m / "x.npy",)), (os.rename, (m / "big.npy", m / "b2.npy")),
                     (os.rename, (m / "x.txt", m / "x2.txt"))):
        with pytest.raises(OSError) as exc:
            op(*args)
        assert exc.value.errno == errno.ENOSPC, op
    assert sorted(os.listdir(m.path)) == ["big.npy", "big.txt", "x.npy", "x.txt"]
    assert Snapshot(arc).sha256 == before.sha256
    assert no_temp_left()
    # The edit stays in the mount; reading it is no write, so its close
    # must not fail (checked at the end).
    text, reader_close = read_view(m / "x.txt")
    assert text == new_text
    cat = run(["cat", m / "x.txt"], ok=False)
    # With room again, the next commit (here: an fsync) succeeds.
    os.unlink(small_fs / "filler")
    fd = os.open(m / "x.txt", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    x = np.array([1.0, 2.0])
    check_archive(arc, before, changed={"x": x})
    check_views(m, "x", x)
    assert no_temp_left(["a.npz"])
    unmount(m)
    check_archive(arc, before, changed={"x": x})
    assert reader_close == 0, "close() of a read-only descriptor failed: %s" % os.strerror(reader_close)
    assert (cat.returncode, cat.stdout) == (0, new_text), cat


def test_view_renamed_onto_member_failure_kept(tmp_path, mount):
    """A view renamed onto a plain member commits its text as that member;
    when the commit fails (here ESTALE: the archive was removed behind the
    mount, which a replacement no longer does: the mount follows those),
    rename() fails and the reason is kept in user.npzfs.error."""
    arc = tmp_path / "a.npz"
    np.savez(arc, a=np.arange(3))
    with zipfile.ZipFile(arc, "a") as z:
        z.writestr("notes.bin", b"hello")
    m = mount(arc)
    os.remove(arc)
    with pytest.raises(OSError) as exc:
        os.rename(m / "a.txt", m / "notes.bin")
    assert exc.value.errno == errno.ESTALE
    assert "notes.bin" in getxattr(m / "notes.bin", "error")
    assert read(m / "notes.bin") == b"hello"

