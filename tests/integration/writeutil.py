"""writeutil.py - helpers for the write-side integration tests.

The oracle is always the archive file itself, read with zipfile and numpy
(never through the mount): `Snapshot` records every member's stored data
(method, CRC, sizes, date and the raw compressed bytes, located through the
local header as NOTES.md says) and the member order; `check_archive` compares
a new state of the archive against a snapshot and the expected changes.
"""
import hashlib
import io
import os
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import archives
import npyref
from conftest import SLOW, npzfs_cmd, is_mounted, poll

STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
METHOD = {"stored": STORED, "deflated": DEFLATED}
COMPRESSIONS = archives.COMPRESSIONS
TIMEOUT = 30 * SLOW


# ------------------------------------------------------------------ arrays

def base_arrays():
    """The arrays of the standard test archive, in member order."""
    rng = np.random.default_rng(2024)
    return {
        "x": np.array([0.5, 1.0, 1.5, 2.0, 2.5]),
        "m": np.arange(12.0).reshape(3, 4),
        "u": np.array([1, 2, 3], dtype=np.uint8),
        "n": np.arange(10),
        "s": np.array(["alpha", "beta gamma"]),
        "r": rng.standard_normal(20000),          # big enough to deflate for real
    }


def make_archive(path, compression, arrays=None):
    """Write the standard archive (or `arrays`) with numpy; return path."""
    arrays = base_arrays() if arrays is None else arrays
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        archives.savez(path, arrays, compression)
    return Path(path)


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def data_offset(npy):
    """Offset of the array data in .npy bytes."""
    return npyref.npy_header(npy)[1]


def same_array(got, want):
    """Same dtype, shape and element bytes."""
    return (got.dtype == want.dtype and got.shape == want.shape
            and np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes())


def assert_same_array(got, want, what=""):
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert same_array(got, want), (what, got, want)


def render(arr):
    """The exact text view npzfs must show for arr (as numpy would save it)."""
    return npyref.render(arr, npyref.npy_header(npy_bytes(arr))[0])


# ------------------------------------------------------------------ archive

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Member:
    __slots__ = ("name", "method", "crc", "csize", "size", "date_time", "raw")

    def __init__(self, f, zi):
        self.name = zi.filename
        self.method = zi.compress_type
        self.crc = zi.CRC
        self.csize = zi.compress_size
        self.size = zi.file_size
        self.date_time = zi.date_time
        f.seek(zi.header_offset)
        lh = f.read(30)
        assert lh[:4] == b"PK\x03\x04", (zi.filename, lh)
        nlen, xlen = struct.unpack("<HH", lh[26:30])
        assert f.read(nlen).decode("utf-8", "replace") == zi.filename
        f.seek(zi.header_offset + 30 + nlen + xlen)
        self.raw = f.read(zi.compress_size)
        assert len(self.raw) == zi.compress_size, zi.filename

    def data(self):
        """(method, crc, csize, size, raw): the stored data, name aside."""
        return (self.method, self.crc, self.csize, self.size, self.raw)

    def key(self):
        return self.data() + (self.date_time,)


class Snapshot:
    """Members of an archive file: .order (names), .members (name -> Member),
    .sha256 of the whole file."""

    def __init__(self, path):
        self.path = Path(path)
        self.sha256 = sha256(path)
        with open(path, "rb") as f, zipfile.ZipFile(f) as z:
            infos = z.infolist()
            self.order = [zi.filename for zi in infos]
            self.members = {zi.filename: Member(f, zi) for zi in infos}
        assert len(self.members) == len(self.order), self.order


def mname(name):
    """Member name of array `name` ('sub/x' -> 'sub/x.npy')."""
    return name + ".npy"


def load_archive(path):
    """name -> array for every .npy member, read by numpy from the file
    (our own test archives: object arrays may be unpickled)."""
    with np.load(path, allow_pickle=True) as z:
        return {k: z[k] for k in z.files}


def check_archive(path, before, changed=(), added=(), removed=(), renamed=(),
                  plain=(), methods=None, new_method=None):
    """Assert that archive `path` is `before` (a Snapshot) with exactly these
    changes, and return the new Snapshot:
    - changed: array name -> expected array (member rewritten in place,
      same position, same method unless `methods` says otherwise);
    - added: array name -> expected array (new member; method new_method);
    - removed: array names no longer present;
    - renamed: old array name -> new array name (stored data unchanged);
    - plain: member name -> bytes (new plain members);
    - methods: member name -> zipfile method, overriding the defaults.
    Every other member keeps its stored data (method, CRC, sizes, date and
    compressed bytes) and the surviving members keep their relative order."""
    changed, added, renamed, plain = dict(changed), dict(added), dict(renamed), dict(plain)
    removed = set(removed)
    methods = dict(methods or {})
    after = Snapshot(path)
    arrays = load_archive(path)     # the archive opens in numpy, every member CRC-checked

    touched = set(changed) | removed | set(renamed)
    want_names = ([mname(renamed.get(n[:-4], n[:-4])) if n.endswith(".npy") else n
                   for n in before.order
                   if not (n.endswith(".npy") and n[:-4] in removed)])
    new_names = [mname(n) for n in added] + list(plain)
    assert sorted(after.order) == sorted(want_names + new_names), (after.order, want_names, new_names)
    survivors = [n for n in after.order if n in want_names]
    assert survivors == want_names, ("member order changed", before.order, after.order)

    for n in before.order:
        a = n[:-4] if n.endswith(".npy") else None
        if a in touched:
            continue
        assert after.members[n].key() == before.members[n].key(), "untouched member %s changed" % n
    for old, new in renamed.items():
        assert after.members[mname(new)].data() == before.members[mname(old)].data(), \
            "renamed member %s -> %s: data changed" % (old, new)
    for a, want in changed.items():
        assert_same_array(arrays[a], want, a)
        m = mname(a)
        assert after.members[m].method == methods.get(m, before.members[m].method), m
    for a, want in added.items():
        assert_same_array(arrays[a], want, a)
        m = mname(a)
        if m in methods or new_method is not None:
            assert after.members[m].method == methods.get(m, new_method), m
    with zipfile.ZipFile(path) as z:
        for name, data in plain.items():
            assert z.read(name) == data, name
            if name in methods:
                assert after.members[name].method == methods[name], name
    return after


def default_new_method(before):
    """The method npzfs gives a new member under compress=keep."""
    return DEFLATED if any(m.method == DEFLATED for m in before.members.values()) else STORED


# ------------------------------------------------------------------ mount

def read(path):
    with open(path, "rb") as f:
        return f.read()


def getxattr(path, name):
    return os.getxattr(str(path), "user.npzfs." + name).decode()


def unmount(m):
    """Unmount m now (the daemon must exit cleanly)."""
    problems = m.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def run(cmd, ok=True, **kw):
    """Run a command (list, or str for the shell); assert exit status 0
    unless ok is False.  Returns the CompletedProcess."""
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=TIMEOUT, **kw)
    if ok:
        assert r.returncode == 0, "%r: exit %s\n%s%s" % (cmd, r.returncode, r.stdout.decode(errors="replace"),
                                                        r.stderr.decode(errors="replace"))
    return r


def check_views(m, name, want):
    """The mount shows array `name` as `want` in both views, with their
    sizes right in stat."""
    npy, txt = m / (name + ".npy"), m / (name + ".txt")
    assert_same_array(np.load(npy), want, name + ".npy")
    text = render(want).encode()
    assert read(txt) == text, name + ".txt"
    assert os.stat(npy).st_size == len(read(npy)), name + ".npy"
    assert os.stat(txt).st_size == len(text), name + ".txt"


def write_file(path, data, mode="wb"):
    """open / write / close: the OSError of close() (EINVAL...) propagates."""
    f = open(path, mode)
    try:
        f.write(data)
    except BaseException:
        try:
            f.close()
        except OSError:
            pass
        raise
    f.close()


def close_errno(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    """Write data with os calls; the errno of close() (0 if it succeeded).
    The write itself must succeed (errors come at close)."""
    fd = os.open(path, flags, 0o644)
    try:
        assert os.write(fd, data) == len(data)
    except BaseException:
        os.close(fd)
        raise
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return 0


# ------------------------------------------------------------------ raw daemons

class Daemon:
    """A bare `npzfs -f` process on ARCHIVE MNT, for tests that kill it.
    Its stderr goes to a file; close() always leaves no mount behind."""

    def __init__(self, archive, mnt, log, *opts):
        self.archive, self.mnt, self.log = Path(archive), Path(mnt), Path(log)
        self.mnt.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(npzfs_cmd("-f", *opts, self.archive, self.mnt),
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        up = poll(lambda: os.path.ismount(self.mnt) or self.proc.poll() is not None, 10 * SLOW)
        if not up or not os.path.ismount(self.mnt):
            self.close()
            pytest.fail("npzfs did not mount %s:\n%s" % (self.archive, self.stderr()), pytrace=False)

    def stderr(self):
        return self.log.read_text(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        """Kill the daemon if it still runs and detach the mount."""
        self.kill()
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True)
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)


def lock_holder(lock, then=(), args=()):
    """A process holding an OFD write lock on file `lock` (the commit lock of
    an archive: .NAME.lock beside it) once it printed 'locked'.  After a
    line on its stdin it runs the python lines `then` (sys.argv[2:] = args)
    and exits, releasing the lock."""
    code = "\n".join([
        "import fcntl, os, struct, sys",
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)",
        "fcntl.fcntl(fd, 38, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 0, 0, 0))",
        "print('locked', flush=True)",
        "sys.stdin.readline()", *then, ""])
    holder = subprocess.Popen(["/usr/bin/python3", "-c", code, str(lock),
                               *map(str, args)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"locked\n"
    return holder


def close_at_barrier(path, data, barrier, out, key):
    """Open and write all of data to path, wait for the other writers at
    barrier, then close: out[key] = 0 or the errno of close()."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
        barrier.wait(timeout=30)
    finally:
        try:
            os.close(fd)
            out[key] = 0
        except OSError as e:
            out[key] = e.errno
