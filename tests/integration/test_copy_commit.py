"""test_copy_commit.py - commits where the filesystem cannot clone (ext4,
the temporary directory here) and compactions: npzfs's own writer copies
every kept member byte for byte to its new place (copy_file_range), its
SOZip index with it, keeps stored data aligned, writes patches over the
copy, and moves the central entries' offsets (zip64 ones too).

The oracles: numpy, zipfile.testzip(), `unzip -t`, `npzfs --check`, every
SOZip chunk inflated alone (test_sozip_write.check_sozip), the hidden index
records' bytes, and the daemon's log (which path the commits took)."""
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib

import numpy as np
import pytest

import sozip
from conftest import npzfs_cmd
from test_clone import check_file, data_offset
from test_sozip_write import check_sozip
from writeutil import npy_bytes, run, unmount

COPY_LOG = "commits copy the archive (no reflink here"
CLONE_LOG = "commits clone the archive (reflink)"
REWRITE_LOG = "commits rewrite the archive through libzip"
SOZIP_BAD = ("SOZip index ignored", "SOZip index does not match the data")


def check_aligned(path):
    """Every stored member's data starts on 4096 bytes (64 KiB or more) or
    64 bytes."""
    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if i.compress_type == zipfile.ZIP_STORED]
    for i in infos:
        align = 4096 if i.file_size >= 64 << 10 else 64
        off = data_offset(path, i.filename)
        assert off % align == 0, (i.filename, off, align)


def npzfs_check(path):
    r = subprocess.run(npzfs_cmd("--check", path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def local_header(path, name):
    """The bytes of member name's local header (to its data)."""
    with zipfile.ZipFile(path) as z:
        off = z.getinfo(name).header_offset
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(data_offset(path, name) - off)


def test_kept_sozip_index_survives(tmp_path, mount):
    """A commit of another member copies a kept SOZip member with its
    hidden index, byte for byte; a fresh mount reads it through the index."""
    rng = np.random.default_rng(21)
    arrays = {"a": np.round(rng.standard_normal(300000), 3),
              "b": np.arange(1000), "sub/c": np.round(rng.standard_normal(90000), 2)}
    src = tmp_path / "src.npz"
    np.savez_compressed(src, **arrays)
    arc = tmp_path / "a.npz"
    members = sozip.npz_to_sozip(src, arc, ["a.npy", "sub/c.npy"], chunk=8192)
    before = {n: sozip.hidden_index_at(arc, n) for n in ("a.npy", "sub/c.npy")}
    assert all(before.values())
    m = mount(arc)
    np.save(m / "b.npy", np.arange(5))          # replaces b, moves sub/c
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    for n, idx in before.items():
        assert sozip.hidden_index_at(arc, n) == idx, n
    check_file(arc, {"a": arrays["a"], "b": np.arange(5), "sub/c": arrays["sub/c"]})
    npzfs_check(arc)
    m = mount(arc)
    for n in ("a.npy", "sub/c.npy"):
        with open(m / n, "rb") as f:
            f.seek(len(members[n].data) // 2)
            assert f.read(20000) == members[n].data[len(members[n].data) // 2:][:20000]
        assert (m / n).read_bytes() == members[n].data
    assert not any(s in m.stderr() for s in SOZIP_BAD), m.stderr()


def test_deflated_members_written_as_sozip(tmp_path, mount):
    """On ext4 too, new and changed deflated content is SOZip, and a member
    npzfs wrote so keeps its index through commits of other members."""
    rng = np.random.default_rng(3)
    arc = tmp_path / "a.npz"
    small = np.arange(10.0)
    np.savez_compressed(arc, small=small)
    big = np.round(rng.standard_normal(400_000), 3)         # 3.2 MB
    np.save(tmp_path / "big.npy", big)
    m = mount(arc)
    run(["cp", tmp_path / "big.npy", m.path])
    check_sozip(arc, "big.npy", npy_bytes(big))
    idx = sozip.hidden_index_at(arc, "big.npy")
    run(["sed", "-i", "2s/.*/-1.5/", m / "small.txt"])     # another member
    small[0] = -1.5
    check_sozip(arc, "big.npy", npy_bytes(big))
    assert sozip.hidden_index_at(arc, "big.npy") == idx
    run(["sed", "-i", "2s/.*/42.125/", m / "big.txt"])     # big itself
    big[0] = 42.125
    check_sozip(arc, "big.npy", npy_bytes(big))
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    check_file(arc, {"small": small, "big": big})


def test_stored_members_aligned(tmp_path, mount):
    """numpy's unaligned stored members come out aligned from the first
    commit (their local header gets an alignment extra field); the next
    commit, which does not move them, copies their headers as they are."""
    arc = tmp_path / "a.npz"
    want = {"mid": np.arange(100_000, dtype=np.float64),
            "big": np.arange(300_000, dtype=np.int64) * 3,
            "params": np.arange(64, dtype=np.float64) / 4,
            "small": np.arange(1000, dtype=np.int32)}
    np.savez(arc, **want)
    m = mount(arc)
    run(["sed", "-i", "3s/.*/42.5/", m / "params.txt"])
    want["params"][1] = 42.5
    check_file(arc, want)
    check_aligned(arc)
    heads = {n: local_header(arc, n) for n in ("mid.npy", "big.npy")}
    run(["rm", m / "small.npy"])
    del want["small"]
    check_file(arc, want)
    check_aligned(arc)
    assert {n: local_header(arc, n) for n in heads} == heads
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    npzfs_check(arc)


MMAP_EDIT = r"""
import sys, numpy as np
a = np.load(sys.argv[1], mmap_mode="r+")
for i, v in zip(map(int, sys.argv[2::2]), map(int, sys.argv[3::2])):
    a[i] = v
a.flush()
del a
"""


def test_patch_lands_exactly(tmp_path, mount):
    """Edits in place of a stored member (dd-style pwrite, np.memmap) are
    written over the member's copy: every byte numpy's, CRC right."""
    arc = tmp_path / "a.npz"
    n = 2_000_000
    want = {"a": np.arange(10.0), "big": np.arange(n, dtype=np.uint64),
            "tail": np.arange(7, dtype=np.int8)}
    np.savez(arc, **want)
    m = mount(arc)
    hdr = len(npy_bytes(want["big"])) - want["big"].nbytes
    with open(m / "big.npy", "r+b") as f:           # one value, mid-page
        f.seek(hdr + 8 * (n // 3))
        f.write(np.uint64(424242).tobytes())
    want["big"][n // 3] = 424242
    check_file(arc, want)
    edits = [(0, 7), (n // 2, 123456789), (n // 2 + 1, 5), (n - 1, 99)]
    run(["/usr/bin/python3", "-c", MMAP_EDIT, m / "big.npy"] +
        [str(x) for e in edits for x in e])
    for i, v in edits:
        want["big"][i] = v
    check_file(arc, want)
    check_aligned(arc)
    with open(m / "big.npy", "rb") as f:
        assert f.read() == npy_bytes(want["big"])
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    check_file(arc, want)
    npzfs_check(arc)


def test_rename_remove_add(tmp_path, mount):
    arrays = {"x": np.array([0.5, 1.0, 1.5]), "m": np.arange(12.0).reshape(3, 4),
              "n": np.arange(100000), "s": np.array(["alpha", "beta"])}
    arc = tmp_path / "a.npz"
    np.savez(arc, **arrays)
    m = mount(arc)
    new = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    (tmp_path / "new.npy").write_bytes(npy_bytes(new))
    run(["cp", tmp_path / "new.npy", m.path])
    run(["mv", m / "x.npy", m / "y.npy"])
    run(["sed", "-i", "2s/.*/-3.5/", m / "y.txt"])
    run(["rm", m / "m.npy"])
    run(["mv", m / "n.npy", m / "nn.npy"])
    np.save(m / "z.npy", np.eye(3))
    y = arrays["x"].copy()
    y[0] = -3.5
    want = {"y": y, "nn": arrays["n"], "s": arrays["s"], "new": new, "z": np.eye(3)}
    with zipfile.ZipFile(arc) as z:
        order = [name[:-4] for name in z.namelist()]
    assert sorted(order) == sorted(want)
    check_file(arc, {k: want[k] for k in order})
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    check_file(arc, {k: want[k] for k in order})
    npzfs_check(arc)


def _zip64_archive(path, members):
    """A zip whose central entries all give their local header offset in a
    zip64 extra field (0xffffffff in the 32-bit field), and a data
    descriptor after the data of members whose name starts with "d"."""
    body, central = b"", b""
    for name, data in members:
        nb, crc, off = name.encode(), zlib.crc32(data), len(body)
        dd = name.startswith("d")
        flags = 8 if dd else 0
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, flags, 0, 0x6000, 0x5821,
                            0 if dd else crc, 0 if dd else len(data),
                            0 if dd else len(data), len(nb), 0) + nb + data
        if dd:
            body += struct.pack("<IIII", 0x08074B50, crc, len(data), len(data))
        extra = struct.pack("<HHQ", 1, 8, off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x32D, 45, flags, 0,
                               0x6000, 0x5821, crc, len(data), len(data), len(nb),
                               len(extra), 0, 0, 0, 0o100644 << 16, 0xFFFFFFFF) + nb + extra
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                       len(central), len(body), 0)
    path.write_bytes(body + central + eocd)


def test_zip64_offsets_and_descriptors(tmp_path, mount):
    """Kept members whose entries hold their offset in a zip64 extra get
    the new offset there; a member with a data descriptor is copied with
    exactly its descriptor."""
    a, b, d = np.arange(5.0), np.arange(3000, dtype=np.int32), np.arange(70000)
    arc = tmp_path / "z.npz"
    _zip64_archive(arc, [("a.npy", npy_bytes(a)), ("d.npy", npy_bytes(d)),
                         ("b.npy", npy_bytes(b))])
    check_file(arc, {"a": a, "d": d, "b": b})
    m = mount(arc)
    run(["sed", "-i", "2s/.*/-2.25/", m / "a.txt"])
    a[0] = -2.25
    check_file(arc, {"a": a, "d": d, "b": b})
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    with zipfile.ZipFile(arc) as z:
        infos = {i.filename: i for i in z.infolist()}
    raw = arc.read_bytes()
    cd = raw.index(b"PK\x01\x02")
    # d's descriptor (16 bytes), then b's local header: b's small data is
    # aligned on 64 by an extra field, not by bytes copied in between
    d_end = data_offset(arc, "d.npy") + infos["d.npy"].compress_size
    assert raw[d_end:d_end + 4] == b"PK\x07\x08"
    assert infos["b.npy"].header_offset == d_end + 16
    # the zip64 offset fields carry the offsets (the 32-bit ones stay)
    pos = cd
    for _ in infos:
        nlen, xlen, clen = struct.unpack("<HHH", raw[pos + 28:pos + 34])
        name = raw[pos + 46:pos + 46 + nlen].decode()
        if name != "a.npy":
            assert struct.unpack("<I", raw[pos + 42:pos + 46])[0] == 0xFFFFFFFF
            assert struct.unpack("<HHQ", raw[pos + 46 + nlen:pos + 58 + nlen]) == \
                (1, 8, infos[name].header_offset)
        pos += 46 + nlen + xlen + clen
    npzfs_check(arc)


def test_commit_rewrite_option_ext4(tmp_path, mount):
    """-o commit=rewrite: libzip writes the archive (and says so once)."""
    arc = tmp_path / "a.npz"
    want = {"p": np.arange(8.0), "q": np.arange(100_000)}
    np.savez(arc, **want)
    m = mount(arc, "-o", "commit=rewrite")
    run(["sed", "-i", "2s/.*/9.5/", m / "p.txt"])
    want["p"][0] = 9.5
    run(["sed", "-i", "3s/.*/8.5/", m / "p.txt"])
    want["p"][1] = 8.5
    unmount(m)
    log = m.stderr()
    assert log.count(REWRITE_LOG) == 1 and COPY_LOG not in log, log
    check_file(arc, want)


@pytest.fixture
def xfs_dir(xfs, request):
    d = xfs / ("copy-" + request.node.name)
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_compaction_keeps_sozip_and_alignment(xfs_dir, mount):
    """A compaction on XFS (the copy mode, where the clone would be mostly
    holes) keeps the SOZip index of a kept member and aligns stored data."""
    rng = np.random.default_rng(9)
    a = np.round(rng.standard_normal(200_000), 3)
    mid = np.arange(30_000, dtype=np.float64)           # 240 KB stored
    big = np.arange(1_500_000, dtype=np.int64)          # 12 MB stored
    p = np.arange(7, dtype=np.int16)
    arc = xfs_dir / "a.npz"
    sozip.write_zip(arc, [sozip.Member("p.npy", npy_bytes(p), "stored"),
                          sozip.Member("a.npy", npy_bytes(a), "sozip", chunk=16384),
                          sozip.Member("big.npy", npy_bytes(big), "stored"),
                          sozip.Member("mid.npy", npy_bytes(mid), "stored")])
    idx = sozip.hidden_index_at(arc, "a.npy")
    assert idx and data_offset(arc, "mid.npy") % 4096 != 0
    m = mount(arc)
    small = np.arange(5, dtype=np.int64)
    np.save(xfs_dir / "small.npy", small)
    run(["cp", xfs_dir / "small.npy", m / "big.npy"])
    want = {"p": p, "a": a, "big": small, "mid": mid}
    check_file(arc, want)
    unmount(m)
    assert "compaction" in m.stderr() and COPY_LOG not in m.stderr(), m.stderr()
    assert sozip.hidden_index_at(arc, "a.npy") == idx
    check_aligned(arc)
    assert os.path.getsize(arc) < 2 << 20
    npzfs_check(arc)
    m = mount(arc)
    assert (m / "a.npy").read_bytes() == npy_bytes(a)
    assert not any(s in m.stderr() for s in SOZIP_BAD), m.stderr()


def insert_range_works(d):
    """Does the filesystem of directory d move data up in place
    (fallocate FALLOC_FL_INSERT_RANGE)?"""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    p = os.path.join(d, ".insert-range-probe")
    with open(p, "wb") as f:
        f.write(b"\1" * 8192)
        f.flush()
        ok = libc.fallocate(f.fileno(), 0x20, 0, 4096) == 0
    os.unlink(p)
    return ok


def _edit_text_views(arc, m, want, offsets=None):
    """cp an edited x.txt (parsed into a .npy over 8 MiB on every thread:
    its CRC combined from theirs), then sed -i a.txt (parsed on one thread,
    its CRC kept as written).  offsets: after each commit, the local
    header offset of the member just written is appended."""
    lines = (m / "x.txt").read_text().split("\n")
    lines[1] = "42.5"
    ed = arc.parent / "ed.txt"
    ed.write_text("\n".join(lines))
    run(["cp", ed, m / "x.txt"])
    want["x"][0] = 42.5
    check_file(arc, want)
    if offsets is not None:
        offsets.append(zipfile.ZipFile(arc).getinfo("x.npy").header_offset)
    run(["sed", "-i", "2s/.*/7/", m / "a.txt"])
    want["a"][0] = 7
    check_file(arc, want)
    if offsets is not None:
        offsets.append(zipfile.ZipFile(arc).getinfo("a.npy").header_offset)


def test_parsed_view_becomes_the_archive(tmp_path, mount):
    """A written-back text view's parsed .npy is not copied into the new
    archive: its spill file, made beside the archive, becomes the new
    archive, the data moved up in place by one block and its local header
    put before it (at offset 0), the other members copied after it.  The
    central directory keeps the members' order; every byte is numpy's."""
    rng = np.random.default_rng(5)
    want = {"s": np.arange(10.0), "x": rng.standard_normal(1_200_000),
            "a": rng.integers(0, 100, 50_000),
            "z": rng.standard_normal(100_000).astype(np.float32)}
    arc = tmp_path / "a.npz"
    np.savez(arc, **want)
    order = zipfile.ZipFile(arc).namelist()
    m = mount(arc)
    offsets = []
    _edit_text_views(arc, m, want, offsets)
    if insert_range_works(str(tmp_path)):
        # each commit's parsed member is first in the file
        assert offsets == [0, 0]
    with zipfile.ZipFile(arc) as z:
        assert z.namelist() == order
        assert z.testzip() is None
    with open(arc, "rb") as f:
        assert f.read(4) == b"PK\3\4"
    check_aligned(arc)
    r = subprocess.run(["unzip", "-tq", str(arc)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [p for p in os.listdir(tmp_path) if ".npzfs-" in p]
    unmount(m)
    assert COPY_LOG in m.stderr(), m.stderr()
    check_file(arc, want)
    npzfs_check(arc)


def test_parsed_view_copied_without_insert_range(tmp_path, mount):
    """Where the archive's filesystem cannot move data up in place (tmpfs),
    the parsed .npy is copied into the new archive as before, once said in
    the log, and lands exactly."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    d = tempfile.mkdtemp(dir="/dev/shm")
    try:
        if insert_range_works(d):
            pytest.skip("/dev/shm moves data up in place")
        rng = np.random.default_rng(6)
        want = {"x": rng.standard_normal(1_200_000), "a": rng.integers(0, 100, 50_000)}
        arc = pathlib.Path(d) / "a.npz"
        np.savez(arc, **want)
        m = mount(arc)
        _edit_text_views(arc, m, want)
        unmount(m)
        assert "no FALLOC_FL_INSERT_RANGE here" in m.stderr(), m.stderr()
        check_file(arc, want)
        check_aligned(arc)
        npzfs_check(arc)
    finally:
        shutil.rmtree(d)
