"""test_limits.py - memory and time stay linear (issue 8): member names
thousands of directories deep, many commits on many members, an archive
deep in the filesystem.

Deep paths are longer than PATH_MAX: they are reached one directory at a
time through descriptors (os.open(..., dir_fd=)), as find does.
"""
import io
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import BIN, SANITIZED, WRAP, is_mounted, poll

COMPONENT = "c" * 15                # 16 bytes a level with its slash
MIB = 1 << 20


def status(pid, key):
    """A /proc/PID/status value in bytes (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def deep_archive(path, depth):
    """x.npy at `depth` levels, and a few arrays at other depths; returns
    {member name: array}."""
    arrays = {(COMPONENT + "/") * depth + "x": np.arange(12.0).reshape(3, 4)}
    for k in (1, depth // 3, depth // 2, depth - 1):
        arrays[(COMPONENT + "/") * k + "y%d" % k] = np.arange(k % 7 + 1)
    np.savez(path, **arrays)
    return arrays


def open_deep(root, name, flags=os.O_RDONLY):
    """Open root/name one component at a time: a descriptor."""
    parts = name.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for p in parts[:-1]:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


def load_deep(root, name):
    fd = open_deep(root, name)
    with os.fdopen(fd, "rb") as f:
        return np.load(io.BytesIO(f.read()))


def find_names(root):
    """(depth, name) of every entry find lists under root."""
    out = subprocess.run(["find", str(root), "-mindepth", "1", "-printf", "%d %f\\n"],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [tuple(line.split(" ", 1)) for line in out.splitlines()]


def hwm_of_mount(mount, archive):
    m = mount(archive)
    hwm = status(m.proc.pid, "VmHWM")
    m.stop()
    return hwm


def test_deep_names_memory_and_find(tmp_path, mount):
    depth = 4000        # names of 64,000 bytes: about 128 MB of full paths
    archive = tmp_path / "deep.npz"
    arrays = deep_archive(archive, depth)
    m = mount(archive)
    assert SANITIZED or status(m.proc.pid, "VmHWM") < 64 * MIB
    t0 = time.monotonic()
    entries = find_names(m.path)
    took = time.monotonic() - t0
    dirs = depth        # every level is a directory, the last holds x
    files = 2 * len(arrays)     # NAME.npy and NAME.txt
    assert len(entries) == dirs + files
    assert ("%d" % (depth + 1), "x.npy") in entries
    assert ("%d" % (depth + 1), "x.txt") in entries
    for name, want in arrays.items():
        got = load_deep(m.path, name + ".npy")
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert SANITIZED or status(m.proc.pid, "VmHWM") < 64 * MIB, "after find (%.1f s)" % took


def test_deep_names_memory_is_linear(tmp_path, mount):
    base = tmp_path / "flat.npz"
    np.savez(base, x=np.arange(3))
    hwm = {0: hwm_of_mount(mount, base)}
    for depth in (2000, 4000):
        archive = tmp_path / ("deep%d.npz" % depth)
        deep_archive(archive, depth)
        hwm[depth] = hwm_of_mount(mount, archive)
    grow2, grow4 = hwm[2000] - hwm[0], hwm[4000] - hwm[0]
    # quadratic would be 4x (32 MB, then 128 MB); allow noise of 2 MiB
    assert SANITIZED or grow4 <= 2.5 * grow2 + 2 * MIB, hwm


def test_many_commits_memory(tmp_path, mount):
    n = 20000
    archive = tmp_path / "many.npz"
    np.savez(archive, **{"m%05d" % i: np.arange(i % 5 + 1) for i in range(n)})
    m = mount(archive)
    rss = {}
    rounds = 20 if SANITIZED else 100
    for i in range(rounds):
        with open(m / "m00001.txt", "w") as f:
            f.write("%d\n%d\n" % (i, -i))
        if i == 0:
            rss[1] = status(m.proc.pid, "VmRSS")
    rss[100] = status(m.proc.pid, "VmRSS")
    assert SANITIZED or rss[100] <= 2 * rss[1], rss
    with np.load(archive) as z:
        assert len(z.files) == n
        assert np.array_equal(z["m00001"], [rounds - 1, 1 - rounds])
        assert np.array_equal(z["m19999"], np.arange(19999 % 5 + 1))


@pytest.mark.skipif(shutil.which("strace") is None or WRAP, reason="needs strace, no wrapper")
def test_archive_path_resolved_once(tmp_path):
    """realpath() costs one readlink per component: once per mount, not
    again at every commit."""
    depth = 300
    d = tmp_path.joinpath(*["d"] * depth)
    d.mkdir(parents=True)
    archive = d / "a.npz"
    np.savez(archive, x=np.arange(3), y=np.ones(2))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    counts = tmp_path / "strace.out"
    proc = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=readlink", "-o", str(counts),
                             BIN, "-f", str(archive), str(mnt)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            # LeakSanitizer cannot run under ptrace
                            env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    try:
        assert poll(lambda: os.path.ismount(mnt) or proc.poll() is not None, 10)
        assert os.path.ismount(mnt)
        for i in range(2):      # two commits
            with open(mnt / "x.txt", "w") as f:
                f.write("%d\n" % (7 + i))
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    calls = 0
    for line in counts.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] == "readlink":
            calls = int(fields[3])
    # one realpath at mount: about depth + 1; before: 2 at mount + 1 a commit
    assert calls < 1.5 * depth + 50, calls
    with np.load(archive) as z:
        assert np.array_equal(z["x"], [8])
        assert np.array_equal(z["y"], np.ones(2))
