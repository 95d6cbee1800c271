"""test_errors.py - archives npzfs refuses (SPEC.md "Command line"), damaged
members inside a good archive, --help/--version, and `-o ro`."""
import errno
import io
import os
import random
import re
import subprocess
import tempfile
import zipfile

import numpy as np
import pytest

from conftest import REPO, SLOW, is_mounted, npzfs_cmd, poll, read, run_npzfs


def good_npz(path):
    np.savez(path, a=np.arange(3), b=np.eye(3))
    return path


def make_missing(d):
    return d / "missing.npz"


def make_directory(d):
    (d / "dir.npz").mkdir()
    return d / "dir.npz"


def make_empty(d):
    (d / "empty.npz").write_bytes(b"")
    return d / "empty.npz"


def make_random(d):
    (d / "random.npz").write_bytes(random.Random(1).randbytes(4096))
    return d / "random.npz"


def make_truncated(d):
    p = good_npz(d / "truncated.npz")
    data = p.read_bytes()
    p.write_bytes(data[:-100])
    return p


def make_bad_cd_offset(d):
    """End of central directory pointing past the end of the file."""
    p = good_npz(d / "badcd.npz")
    data = bytearray(p.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    data[eocd + 16:eocd + 20] = (len(data) + 1000).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    return p


REFUSED = {
    "missing": make_missing,
    "directory": make_directory,
    "empty": make_empty,
    "random_bytes": make_random,
    "truncated": make_truncated,
    "central_directory_past_eof": make_bad_cd_offset,
}


def assert_refused(r, mnt, mentions):
    """Exit status 1, exactly one non-empty stderr line naming `mentions`,
    and nothing mounted."""
    mounted = is_mounted(mnt)
    if mounted:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    assert not mounted, "npzfs mounted %s" % mnt
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert r.returncode == 1, err
    assert len(lines) == 1, err
    assert str(mentions) in lines[0], err


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_archive_refused(tmp_path, case):
    archive = REFUSED[case](tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_npzfs(archive, mnt)
    assert_refused(r, mnt, archive)


def test_unreadable_archive_refused():
    """chmod 000: root reads it anyway, so the daemon runs as nobody (the
    archive is refused before any mount is attempted)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        d = os.path.realpath(d)
        os.chmod(d, 0o755)
        archive = good_npz(os.path.join(d, "secret.npz"))
        os.chmod(archive, 0)
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        os.chmod(mnt, 0o777)
        prefix = []
        if os.getuid() == 0:
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        r = subprocess.run(prefix + npzfs_cmd(archive, mnt), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30 * SLOW)
        assert_refused(r, mnt, archive)


def test_missing_mountpoint_refused(tmp_path):
    archive = good_npz(tmp_path / "good.npz")
    mnt = tmp_path / "no" / "such" / "mnt"
    r = run_npzfs(archive, mnt)
    assert_refused(r, mnt, mnt)


def test_version():
    version = re.search(r"^VERSION\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.M).group(1)
    r = run_npzfs("--version")
    assert r.returncode == 0, r.stderr
    assert version in r.stdout.decode(), r.stdout


def test_help():
    r = run_npzfs("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "-o ro" in out, out
    assert "ARCHIVE" in out.upper(), out


def test_read_only_mount(tmp_path, mount):
    np.savez(tmp_path / "ro.npz", a=np.arange(3), **{"d/b": np.eye(2)})
    m = mount(tmp_path / "ro.npz", "-o", "ro")
    with zipfile.ZipFile(tmp_path / "ro.npz") as z:
        for rel in ("a.npy", "a.txt", "d/b.npy", "d/b.txt"):
            assert os.stat(m / rel).st_mode == 0o100444, rel
        assert os.stat(m.path).st_mode == 0o40755
        assert os.stat(m / "d").st_mode == 0o40755
        assert read(m / "a.npy") == z.read("a.npy")
        assert np.array_equal(np.loadtxt(m / "d/b.txt"), np.eye(2))


# ---------------------------------------------------------------- damaged members

def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """good.npy, bad.npy (garbage header), short.npy (data shorter than
    the header says), bz.npy (bzip2: a method npzfs does not read)."""
    p = tmp_path_factory.mktemp("damaged") / "damaged.npz"
    np.savez(p, good=np.arange(4))
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("bad.npy", b"this is not an npy header\n" * 4)
        z.writestr("short.npy", npy_bytes(np.arange(1000))[:128 + 16])
        z.writestr("bz.npy", npy_bytes(np.arange(10)), compress_type=zipfile.ZIP_BZIP2)
    return p


def lines_naming(m, member):
    return [line for line in m.stderr().splitlines() if member in line]


@pytest.mark.parametrize("member", ["bad.npy", "short.npy"])
def test_damaged_member_view_eio(damaged, mount, member):
    m = mount(damaged)
    view = member[:-4] + ".txt"
    with pytest.raises(OSError) as exc:
        read(m / view)
    assert exc.value.errno == errno.EIO
    assert poll(lambda: lines_naming(m, member), 5), m.stderr()
    assert len(lines_naming(m, member)) == 1, m.stderr()
    with zipfile.ZipFile(damaged) as z:
        assert read(m / member) == z.read(member)
        assert os.stat(m / member).st_size == z.getinfo(member).file_size
        assert read(m / "good.npy") == z.read("good.npy")
    assert read(m / "good.txt") == b"# {'descr': '<i8', 'fortran_order': False, 'shape': (4,), }\n0\n1\n2\n3\n"


def test_unsupported_method_eio(damaged, mount):
    m = mount(damaged)
    with pytest.raises(OSError) as exc:
        read(m / "bz.npy")
    assert exc.value.errno == errno.EIO
    with pytest.raises(OSError) as exc:
        read(m / "bz.txt")
    assert exc.value.errno == errno.EIO
    with zipfile.ZipFile(damaged) as z:
        assert read(m / "good.npy") == z.read("good.npy")
