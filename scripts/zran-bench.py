#!/usr/bin/python3
"""zran-bench.py - how fast npzfs reads a big deflated member numpy wrote
(one deflate stream, no SOZip index): the first `cat` through the mount
against Python's zlib on the same bytes, then random 4 KiB preads.

    scripts/zran-bench.py [--size MiB] [--cache SIZE] [--reads N] [NPZFS_BIN]

The archive (float32 values with limited entropy, so it compresses a bit)
is made once in $TMPDIR (else /var/tmp) and kept for later runs.  Not a
test: it prints numbers.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib

import numpy as np

MiB = 1 << 20


def make_archive(path, size):
    if os.path.exists(path):
        return
    n = size // 4
    rng = np.random.default_rng(0)
    a = np.empty(n, dtype="f4")
    step = 16 * MiB
    for i in range(0, n, step):
        k = min(step, n - i)
        a[i:i + k] = np.round(rng.standard_normal(k), 2)
    tmp = path + ".tmp"
    np.savez_compressed(tmp, x=a)
    os.rename(tmp + ".npz" if not tmp.endswith(".npz") else tmp, path)


def member_bytes(path):
    """The member's raw deflate bytes and its size."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("x.npy")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        h = f.read(30)
        off = info.header_offset + 30 + int.from_bytes(h[26:28], "little") + \
            int.from_bytes(h[28:30], "little")
        f.seek(off)
        return f.read(info.compress_size), info.file_size


def python_zlib(raw):
    """The honest baseline: one decompressobj fed 16 KiB pieces, at most
    64 KiB of output per call."""
    t = time.perf_counter()
    d = zlib.decompressobj(-15)
    total = 0
    for i in range(0, len(raw), 16384):
        buf = raw[i:i + 16384]
        while buf:
            out = d.decompress(buf, 65536)
            total += len(out)
            buf = d.unconsumed_tail
    total += len(d.flush())
    return total, time.perf_counter() - t


def cache_on_disk(pid, cdir):
    """Bytes on disk of the daemon's (unlinked) files in cdir."""
    total, fds = 0, "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        p = os.path.join(fds, fd)
        try:
            if os.readlink(p).startswith(cdir + "/"):
                total += os.stat(p).st_blocks * 512
        except OSError:
            pass
    return total


class Peak(threading.Thread):
    """Samples cache_on_disk every 10 ms until stopped: .peak."""

    def __init__(self, pid, cdir):
        super().__init__(daemon=True)
        self.pid, self.cdir, self.peak = pid, cdir, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, cache_on_disk(self.pid, self.cdir))
            self.stop.wait(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024, help="member MiB")
    ap.add_argument("--cache", default="64M")
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("bin", nargs="?", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "npzfs"))
    args = ap.parse_args()

    tmp = os.environ.get("TMPDIR") or "/var/tmp"
    arc = os.path.join(tmp, "zran-bench-%dM.npz" % args.size)
    t = time.perf_counter()
    make_archive(arc, args.size * MiB)
    if time.perf_counter() - t > 1:
        print("made %s in %.0f s" % (arc, time.perf_counter() - t))
    raw, size = member_bytes(arc)
    print("member x.npy: %d MiB inflated, %d MiB deflated" %
          (size >> 20, len(raw) >> 20))

    n, secs = python_zlib(raw)
    assert n == size
    py_mbs = size / secs / 1e6
    print("python zlib (16 KiB in, 64 KiB out): %.0f MB/s" % py_mbs)
    del raw

    with tempfile.TemporaryDirectory(dir=tmp) as d:
        mnt, cdir = os.path.join(d, "mnt"), os.path.join(d, "cache")
        os.mkdir(mnt)
        os.mkdir(cdir)
        proc = subprocess.Popen([args.bin, "-f", "-o", "ro,cache_size=%s,cache_dir=%s"
                                 % (args.cache, cdir), arc, mnt])
        try:
            deadline = time.time() + 10
            while not os.path.ismount(mnt):
                if proc.poll() is not None or time.time() > deadline:
                    sys.exit("npzfs did not mount")
                time.sleep(0.01)  # waiting for the daemon's mount
            path = os.path.join(mnt, "x.npy")
            peak = Peak(proc.pid, os.path.realpath(cdir))
            peak.start()
            t = time.perf_counter()
            subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
            secs = time.perf_counter() - t
            cat_mbs = size / secs / 1e6
            print("first cat through the mount: %.0f MB/s (%.2fx python zlib)"
                  % (cat_mbs, cat_mbs / py_mbs))

            fd = os.open(path, os.O_RDONLY)
            try:
                rnd = random.Random(1)
                lat = []
                for _ in range(args.reads):
                    # drop the kernel's copy so the daemon answers
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    off = rnd.randrange(0, size - 4096)
                    t = time.perf_counter()
                    b = os.pread(fd, 4096, off)
                    lat.append(time.perf_counter() - t)
                    assert len(b) == 4096
            finally:
                os.close(fd)
            lat.sort()
            print("random 4 KiB pread (cache_size=%s, %d reads): median %.2f ms, "
                  "p90 %.2f ms, max %.2f ms" %
                  (args.cache, len(lat), statistics.median(lat) * 1e3,
                   lat[int(len(lat) * 0.9)] * 1e3, lat[-1] * 1e3))
            peak.stop.set()
            peak.join()
            print("cache files on disk: peak %.1f MiB (cache_size=%s; the "
                  "access points are in memory)" % (peak.peak / MiB, args.cache))
            with open("/proc/%d/status" % proc.pid) as f:
                hwm = [l.split()[1] for l in f if l.startswith("VmHWM")]
            print("daemon VmHWM: %s KiB" % hwm[0])
        finally:
            subprocess.run(["fusermount3", "-u", mnt])
            proc.wait()
    print("load average: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
