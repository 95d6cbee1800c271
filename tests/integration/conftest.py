"""conftest.py - run npzfs on archives for the integration tests.

$NPZFS_BIN is the daemon (default build/npzfs), $NPZFS_WRAP an optional
command prefix ("valgrind -q --error-exitcode=33").  Every mount is undone with
`fusermount3 -u`; a test fails when its daemon reported a sanitizer error,
died, or did not exit with status 0 after the unmount.
"""
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

import archives
import npyref

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("NPZFS_BIN", str(REPO / "build" / "npzfs"))
WRAP = shlex.split(os.environ.get("NPZFS_WRAP", ""))
SLOW = 6 if WRAP else 1                 # valgrind is slow
# Valgrind computes x87 long double arithmetic in double precision: under
# it, the daemon cannot render float128/complex256 exactly.
VALGRIND = any("valgrind" in w for w in WRAP)


def _sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# The AddressSanitizer build (make SAN=1): its memory figures say nothing
# about ours (shadow memory, quarantine) and it runs a few times slower, so
# tests measure memory and repeat statistical rounds only without it.
SANITIZED = _sanitized(BIN)
MOUNT_TIMEOUT = 10 * SLOW
EXIT_TIMEOUT = 30 * SLOW
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

_ACTIVE = []        # Mounts not yet unmounted, for the per-test health check


def npzfs_cmd(*args):
    return WRAP + [BIN, *map(str, args)]


def skip_long_double_under_valgrind(dtype):
    if VALGRIND and has_long_double(dtype):
        pytest.skip("valgrind emulates long double in double precision")


def has_long_double(dtype):
    if dtype.names is not None:
        return any(has_long_double(dtype.fields[n][0]) for n in dtype.names)
    base = dtype.subdtype[0] if dtype.subdtype else dtype
    return base.kind in "fc" and base.itemsize > (8 if base.kind == "f" else 16)


def run_npzfs(*args, timeout=30):
    """Run the daemon to completion (it must not mount): CompletedProcess."""
    return subprocess.run(npzfs_cmd(*args), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout * SLOW)


def mountpoints():
    """Mount points listed in /proc/mounts (octal escapes decoded)."""
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            mp = line.split()[1]
            out.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out


def is_mounted(path):
    return os.path.realpath(path) in mountpoints()


def poll(cond, timeout, step=0.02):
    """Poll cond() until it is true or timeout seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        val = cond()
        if val or time.monotonic() > deadline:
            return val
        time.sleep(step)


def sanitizer_report(text):
    return any(m in text for m in SANITIZER_MARKS)


class Mount:
    """One `npzfs -f [opts] ARCHIVE MNT` daemon.  `mnt / "x.npy"` is a path
    inside the mount."""

    def __init__(self, archive, path, opts, log_dir):
        self.archive = Path(archive)
        self.path = Path(path)
        self.opts = list(opts)
        self.stderr_path = Path(log_dir) / (self.path.name + ".stderr")
        self.proc = None
        self.stopped = False
        self.died_reported = False

    def __truediv__(self, other):
        return self.path / other

    def __fspath__(self):
        return str(self.path)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def start(self):
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                npzfs_cmd("-f", *self.opts, self.archive, self.path),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        _ACTIVE.append(self)
        up = poll(lambda: os.path.ismount(self.path) or self.proc.poll() is not None,
                  MOUNT_TIMEOUT)
        if not up or not os.path.ismount(self.path):
            exited = self.proc.poll()
            problems = self.stop()
            why = ("exited with status %s" % exited if exited is not None
                   else "not mounted after %ss" % MOUNT_TIMEOUT)
            pytest.fail("npzfs -f %s %s %s: %s\n%s"
                        % (" ".join(self.opts), self.archive, self.path, why,
                           "\n".join(problems)), pytrace=False)
        return self

    def health(self):
        """New problems seen while mounted: a dead daemon (reported once),
        a sanitizer report."""
        problems = []
        if self.proc.poll() is not None and not self.died_reported:
            self.died_reported = True
            problems.append("npzfs for %s died with status %s" % (self.archive, self.proc.returncode))
        if sanitizer_report(self.stderr()):
            problems.append("sanitizer report from npzfs for %s" % self.archive)
        if problems:
            problems.append("stderr:\n" + self.stderr())
        return problems

    def stop(self):
        """Unmount, wait for the daemon, and return the problems found."""
        if self.stopped:
            return []
        self.stopped = True
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        problems = []
        if is_mounted(self.path):
            last = []

            def unmount():
                r = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
                last[:] = [r.stderr.decode(errors="replace")]
                return r.returncode == 0
            if not poll(unmount, 10, step=0.1):
                problems.append("fusermount3 -u %s kept failing: %s" % (self.path, last[0]))
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("npzfs (pid %d) still running %ss after the unmount; killed"
                            % (self.proc.pid, EXIT_TIMEOUT))
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode != 0:
            problems.append("npzfs for %s exited with status %s" % (self.archive, self.proc.returncode))
        if sanitizer_report(self.stderr()):
            problems.append("sanitizer report from npzfs for %s" % self.archive)
        if problems:
            problems.append("stderr:\n" + self.stderr())
        return problems


class Mounter:
    """Factory: mounter(archive, *opts) -> Mount; close() unmounts them all
    and fails if any daemon misbehaved."""

    def __init__(self, base):
        self.base = Path(base)
        self.mounts = []

    def __call__(self, archive, *opts):
        m = Mount(archive, self.base / ("mnt%d" % len(self.mounts)), opts, self.base)
        self.mounts.append(m)
        return m.start()

    def close(self):
        problems = []
        for m in reversed(self.mounts):
            problems += m.stop()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


class Mounted:
    """A mounted archive (mnt: a Mount) with its zip open and the expected
    tree (npyref.expected_tree) for the expected values."""

    def __init__(self, archive, mnt, compression=None):
        self.archive = archive
        self.mnt = mnt
        self.path = mnt.path
        self.compression = compression
        self.zip = zipfile.ZipFile(archive)
        self.files, self.dirs = npyref.expected_tree(archive)
        self._expected = {}

    def expected(self, rel):
        if rel not in self._expected:
            self._expected[rel] = npyref.expected_content(self.zip, self.files[rel])
        return self._expected[rel]

    def member(self, name):
        return self.zip.read(name)


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` ("16m") mounted on the new directory path, always
    unmounted afterwards."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def walk(root):
    """(files, dirs) under root, relative, as the mount lists them."""
    files, dirs = set(), {""}
    for top, dnames, fnames in os.walk(root):
        rel = os.path.relpath(top, root)
        rel = "" if rel == "." else rel + "/"
        dirs.update(rel + d for d in dnames)
        files.update(rel + f for f in fnames)
    return files, dirs


@pytest.fixture
def mount(tmp_path):
    """Function-scoped mount factory."""
    m = Mounter(tmp_path)
    yield m
    m.close()


@pytest.fixture(scope="module")
def module_mount(tmp_path_factory):
    """Module-scoped mount factory: one mount per archive per module."""
    m = Mounter(tmp_path_factory.mktemp("mod"))
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _daemon_health():
    """After each test, every daemon still mounted must be alive and clean."""
    yield
    problems = []
    for m in list(_ACTIVE):
        problems += m.health()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _no_mount_left_behind(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp().resolve())
    yield
    for m in list(_ACTIVE):
        m.stop()
    for mp in mountpoints():
        if mp.startswith(base + "/"):
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)


@pytest.fixture(scope="session")
def variety_archives(tmp_path_factory):
    """compression -> path of the archive of archives.variety_arrays()."""
    d = tmp_path_factory.mktemp("variety")
    return {c: archives.variety_archive(d / ("variety_%s.npz" % c), c)
            for c in archives.COMPRESSIONS}


@pytest.fixture(scope="module", params=archives.COMPRESSIONS)
def vm(request, variety_archives, module_mount):
    """The variety archive, stored and deflated, mounted once per module."""
    archive = variety_archives[request.param]
    m = Mounted(archive, module_mount(archive), request.param)
    yield m
    m.zip.close()


# ------------------------------------------------------------------ XFS

def _run(*cmd):
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


@pytest.fixture(scope="session")
def xfs(tmp_path_factory):
    """A reflink XFS of 4 GiB on a sparse image file, mounted for the session;
    unmounted and removed at the end, also after a failure."""
    if shutil.which("mkfs.xfs") is None:
        pytest.fail("mkfs.xfs missing: run scripts/install-deps (xfsprogs)")
    base = tmp_path_factory.mktemp("xfs")
    img, mnt = base / "xfs.img", base / "mnt"
    mnt.mkdir()
    _run("truncate", "-s", "4G", img)
    try:
        _run("mkfs.xfs", "-q", "-m", "reflink=1", img)
        _run("mount", "-o", "loop", img, mnt)
        try:
            yield mnt
        finally:
            for mp in mountpoints():        # a FUSE mount left inside
                if mp.startswith(str(mnt) + "/"):
                    subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
            if subprocess.run(["umount", str(mnt)]).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)])
    finally:
        img.unlink()
