"""test_crash.py - every commit is atomic, also when the daemon is killed
(SPEC.md "Writing": "at any instant, also after kill -9 of the daemon ...
the archive on disk opens in numpy as either the old or the new version").

A ~200 MB stored archive (a big float array and a small one); in each round
a writer process replaces the small array through its text view while the
daemon is killed with SIGKILL after a random delay of 0-300 ms, i.e. before,
during or after the commit that rewrites the 200 MB.  After each kill the
dead mount is detached and the archive must open in numpy, with the big
array intact and the small one either the old or the new version (the new
one if the writer's close() succeeded).  It runs on the temporary directory
(ext4 here: the whole archive is rewritten) and on a reflink XFS (the
archive is cloned and only the change appended), and `unzip -t` must find
the archive clean."""
import io
import os
import random
import subprocess
import time
import zipfile

import numpy as np
import pytest

from conftest import SANITIZED, SLOW, sanitizer_report
from writeutil import Daemon

ROUNDS = 8 if SANITIZED else 12      # the sanitized daemon is ~3x slower
BIG = 25_000_000                  # float64: 200 MB
MAX_DELAY = 0.3

WRITER = r"""
import os, sys
path, text = sys.argv[1], sys.argv[2]
try:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
except OSError as e:
    print(e.errno, e)
    sys.exit(3)
"""


PATCHER = r"""
import os, sys
path, off, value = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
try:
    fd = os.open(path, os.O_WRONLY)          # no O_TRUNC: an edit in place
    try:
        os.pwrite(fd, value, off)
    finally:
        os.close(fd)
except OSError as e:
    print(e.errno, e)
    sys.exit(3)
"""
PATCH_ROUNDS = 4 if SANITIZED else 8


def npy_header_len(arr):
    """The length of the .npy header numpy writes for arr."""
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, np.lib.format.header_data_from_array_1_0(arr))
    return len(b.getvalue())


def kill_round(arc, mnt, log, rng, script, *args):
    """Mount arc, run the writer script with args, kill -9 the daemon after
    a random delay (the moment of the crash), detach the dead mount.
    Returns the writer's exit status (0: its close() succeeded; 3: an
    errno)."""
    daemon = Daemon(arc, mnt, log)
    writer = None
    try:
        writer = subprocess.Popen(["/usr/bin/python3", "-c", script, *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(rng.uniform(0, MAX_DELAY) * SLOW)
        daemon.kill()
        out, _ = writer.communicate(timeout=30 * SLOW)
    finally:
        if writer and writer.poll() is None:
            writer.kill()
            writer.wait()
        daemon.close()
    assert not sanitizer_report(daemon.stderr()), daemon.stderr()
    assert writer.returncode in (0, 3), out
    return writer.returncode


def small_for(k):
    """The small array a round writes: different length and values per round."""
    return np.arange(k % 5 + 1, dtype=np.float64) + k * 10 + 0.5


def text_of(arr):
    return "".join("%r\n" % float(v) for v in arr)


@pytest.mark.parametrize("fs", ["tmp", "xfs"])
def test_kill_9_during_commits(tmp_path, fs, request):
    base = request.getfixturevalue("xfs") if fs == "xfs" else tmp_path
    data = base / ("crash-" + tmp_path.name)
    data.mkdir()
    arc = data / "a.npz"
    big = np.arange(BIG, dtype=np.float64)
    state = np.array([-1.0, -2.0])
    np.savez(arc, big=big, small=state)
    with zipfile.ZipFile(arc) as z:
        big_crc = z.getinfo("big.npy").CRC
    mnt, log = tmp_path / "mnt", tmp_path / "npzfs.log"
    rng = random.Random(os.getpid())
    outcomes = {"old": 0, "new": 0, "writer_ok": 0, "temp_files": 0}
    started = time.monotonic()

    for k in range(ROUNDS):
        new = small_for(k)
        writer_rc = kill_round(arc, mnt, log, rng, WRITER, str(mnt / "small.txt"), text_of(new))

        # The archive opens in numpy as the old or the new version.
        with zipfile.ZipFile(arc) as z:
            assert [i.filename for i in z.infolist()] == ["big.npy", "small.npy"], k
            assert z.getinfo("big.npy").CRC == big_crc
        t = subprocess.run(["unzip", "-tq", str(arc)], capture_output=True, text=True)
        assert t.returncode == 0, (k, t.stdout, t.stderr)
        # (unzip -t checked big's data against its CRC, big_crc: intact)
        with np.load(arc) as z:
            got = z["small"]
        assert got.dtype == np.float64
        if writer_rc == 0:
            # close() returned: the archive on disk held the change.
            outcomes["writer_ok"] += 1
            assert np.array_equal(got, new), (k, got, new)
        else:
            assert np.array_equal(got, state) or np.array_equal(got, new), (k, got, state, new)
        outcomes["new" if np.array_equal(got, new) else "old"] += 1
        state = got

        # A killed commit may leave its temporary file; it never replaces
        # the archive.  Clear it for the next round.
        for name in os.listdir(data):
            if name not in ("a.npz", ".a.npz.lock"):
                outcomes["temp_files"] += 1
                os.unlink(data / name)

    print("kill -9 rounds on %s:" % fs, outcomes, "%.1fs" % (time.monotonic() - started))
    if fs == "xfs":
        # (a round killed before its first commit logs nothing)
        assert "commits clone the archive" in log.read_text(errors="replace")
        for name in os.listdir(data):
            os.unlink(data / name)
        data.rmdir()


@pytest.mark.parametrize("fs", ["tmp", "xfs"])
def test_kill_9_during_patch_commits(tmp_path, fs, request):
    """The same with one value written in place in the big member (no
    O_TRUNC): a copy-on-write edit, which a reflink filesystem commits as a
    patch of the member in place in the clone (its page and its CRC).  The
    big array is the old or the new version, never a mix."""
    base = request.getfixturevalue("xfs") if fs == "xfs" else tmp_path
    data = base / ("patch-" + tmp_path.name)
    data.mkdir()
    arc = data / "a.npz"
    state = np.arange(BIG, dtype=np.float64)
    np.savez(arc, big=state, small=np.array([1.5]))
    hdr = npy_header_len(state)
    mnt, log = tmp_path / "mnt", tmp_path / "npzfs.log"
    rng = random.Random(os.getpid() + 1)
    outcomes = {"old": 0, "new": 0, "writer_ok": 0}

    for k in range(PATCH_ROUNDS):
        i = rng.randrange(BIG)
        value = -float(k + 1)
        new = state.copy()
        new[i] = value
        writer_rc = kill_round(arc, mnt, log, rng, PATCHER, str(mnt / "big.npy"),
                               str(hdr + 8 * i), np.float64(value).tobytes().hex())
        t = subprocess.run(["unzip", "-tq", str(arc)], capture_output=True, text=True)
        assert t.returncode == 0, (k, t.stdout, t.stderr)
        with zipfile.ZipFile(arc) as z:
            assert z.testzip() is None, k
        with np.load(arc) as z:
            got = z["big"]
            assert np.array_equal(z["small"], [1.5]), k
        if writer_rc == 0:
            outcomes["writer_ok"] += 1
            assert np.array_equal(got, new), k
        else:
            assert np.array_equal(got, state) or np.array_equal(got, new), k
        outcomes["new" if np.array_equal(got, new) else "old"] += 1
        state = got
        for name in os.listdir(data):
            if name not in ("a.npz", ".a.npz.lock"):
                os.unlink(data / name)

    print("kill -9 patch rounds on %s:" % fs, outcomes)
    if fs == "xfs":
        for name in os.listdir(data):
            os.unlink(data / name)
        data.rmdir()
