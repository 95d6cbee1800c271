"""test_clone.py - commits on a reflink filesystem (issue 10, first step):
the new archive is a clone of the old file, edited where it changed.

Runs on a real XFS (`mkfs.xfs -m reflink=1` on a sparse image, loop-mounted
for the session and always unmounted).  The oracles are numpy, Python's
zipfile and `unzip -t` on the archive file, the daemon's log (which commit
path it took), and the filesystem's block accounting: `filefrag -v` (shared
extents) and statvfs (free space).
"""
import os
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from conftest import npzfs_cmd
from writeutil import assert_same_array, npy_bytes, run, unmount

PATTERN = 0x0123456789ABCDEF            # fills the big arrays
PATTERN_BYTES = PATTERN.to_bytes(8, "little") * 4
BIG = 256 << 20
CLONE_LOG = "commits clone the archive (reflink)"


@pytest.fixture(scope="session")
def big_arrays():
    return {
        "params": np.arange(64, dtype=np.float64) / 4,
        "big": np.full(BIG // 8, PATTERN, dtype=np.uint64),
        "tail": np.arange(1000, dtype=np.int32),
    }


@pytest.fixture(scope="session")
def big_template(xfs, big_arrays):
    """The stored archive params, big (256 MiB of PATTERN), tail; tests take
    reflink copies of it (instantaneous, no space)."""
    path = xfs / "template.npz"
    np.savez(path, **big_arrays)
    return path


@pytest.fixture
def workdir(xfs, request):
    d = xfs / request.node.name.replace("[", "_").replace("]", "")
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def reflink_copy(src, dst):
    run(["cp", "--reflink=always", src, dst])
    return dst


def check_file(path, want):
    """The archive holds exactly the arrays `want`, in that member order, and
    numpy, zipfile.testzip() and `unzip -t` read it cleanly."""
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.namelist() == [k + ".npy" for k in want]
    with np.load(path) as z:
        for name, arr in want.items():
            assert_same_array(z[name], arr, name)
    r = run(["unzip", "-tq", path])
    assert b"No errors detected" in r.stdout, r.stdout


def allocated(path):
    os.sync()
    return os.stat(path).st_blocks * 512


def free_bytes(fs):
    os.sync()
    st = os.statvfs(fs)
    return st.f_bfree * st.f_frsize


def contains(path, pattern):
    with open(path, "rb") as f:
        tail = b""
        while True:
            block = f.read(16 << 20)
            if not block:
                return False
            if pattern in tail + block:
                return True
            tail = block[-len(pattern):]


def edit_params(m, arrays):
    """sed -i one value of params.txt; the arrays the archive should hold."""
    run(["sed", "-i", "3s/.*/42.5/", m / "params.txt"])
    want = dict(arrays)
    want["params"] = want["params"].copy()
    want["params"][1] = 42.5
    return want


def test_one_value_edit_clones(workdir, big_template, big_arrays, mount, xfs):
    arc = reflink_copy(big_template, workdir / "a.npz")
    orig = reflink_copy(arc, workdir / "orig.npz")     # keeps the old blocks
    size, blocks = os.path.getsize(arc), allocated(arc)
    free0 = free_bytes(xfs)
    m = mount(arc)
    want = edit_params(m, big_arrays)
    check_file(arc, want)
    unmount(m)
    check_file(arc, want)
    assert CLONE_LOG in m.stderr(), m.stderr()
    assert "compaction" not in m.stderr()
    # same physical size; the big member's blocks shared with the copy
    assert abs(allocated(arc) - blocks) < (1 << 20)
    assert free0 - free_bytes(xfs) < size // 20, (free0, free_bytes(xfs), size)
    frag = run(["filefrag", "-v", arc]).stdout.decode()
    assert "shared" in frag, frag
    assert orig.exists()


def test_rm_big_frees_its_blocks(workdir, big_template, big_arrays, mount):
    arc = reflink_copy(big_template, workdir / "a.npz")
    before = allocated(arc)
    m = mount(arc)
    run(["rm", m / "big.npy"])
    want = {k: v for k, v in big_arrays.items() if k != "big"}
    check_file(arc, want)
    unmount(m)
    assert allocated(arc) < before // 10, (allocated(arc), before)
    assert not contains(arc, PATTERN_BYTES)


def test_rm_middle_member_punched(workdir, mount):
    """A removed member in the middle: the clone keeps the others in place
    and punches its bytes out (no compaction: they are a small share)."""
    mid = np.full((16 << 20) // 8, PATTERN, dtype=np.uint64)
    rest = np.arange((96 << 20) // 8, dtype=np.uint64)
    arrays = {"a": np.arange(10.0), "mid": mid, "rest": rest}
    arc = workdir / "a.npz"
    np.savez(arc, **arrays)
    before = allocated(arc)
    offsets = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    m = mount(arc)
    run(["rm", m / "mid.npy"])
    want = {"a": arrays["a"], "rest": rest}
    check_file(arc, want)
    unmount(m)
    assert CLONE_LOG in m.stderr() and "compaction" not in m.stderr(), m.stderr()
    after = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    assert after == {k: offsets[k] for k in ("a.npy", "rest.npy")}
    assert before - allocated(arc) > (15 << 20), (before, allocated(arc))
    assert not contains(arc, PATTERN_BYTES)


def test_add_rename_and_mix(workdir, tmp_path, mount):
    arrays = {"x": np.array([0.5, 1.0, 1.5]), "m": np.arange(12.0).reshape(3, 4),
              "n": np.arange(100000), "s": np.array(["alpha", "beta"])}
    arc = workdir / "a.npz"
    np.savez(arc, **arrays)
    m = mount(arc)
    new = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    (tmp_path / "new.npy").write_bytes(npy_bytes(new))
    run(["cp", tmp_path / "new.npy", m.path])
    want = {**arrays, "new": new}
    check_file(arc, want)
    run(["mv", m / "x.npy", m / "y.npy"])
    want = {("y" if k == "x" else k): v for k, v in want.items()}
    check_file(arc, want)
    # a mix: edit, add, remove, rename
    run(["sed", "-i", "2s/.*/-3.5/", m / "y.txt"])
    run(["rm", m / "m.npy"])
    run(["mv", m / "n.npy", m / "nn.npy"])
    (tmp_path / "z.npy").write_bytes(npy_bytes(np.eye(3)))
    run(["cp", tmp_path / "z.npy", m.path])
    y = want["y"].copy()
    y[0] = -3.5
    want = {"y": y, "nn": arrays["n"], "s": arrays["s"], "new": new, "z": np.eye(3)}
    with np.load(arc) as z:
        assert sorted(z.files) == sorted(want)
    with zipfile.ZipFile(arc) as z:
        order = [n[:-4] for n in z.namelist()]
    check_file(arc, {k: want[k] for k in order})
    unmount(m)
    check_file(arc, {k: want[k] for k in order})
    assert CLONE_LOG in m.stderr(), m.stderr()


def test_deflated_edit(workdir, mount):
    rng = np.random.default_rng(5)
    arrays = {"x": np.array([0.5, 1.0, 1.5]), "r": rng.standard_normal(200000),
              "k": np.arange(5000) % 7}
    arc = workdir / "c.npz"
    np.savez_compressed(arc, **arrays)
    m = mount(arc)
    run(["sed", "-i", "3s/.*/9.75/", m / "x.txt"])
    x = arrays["x"].copy()
    x[1] = 9.75
    want = {**arrays, "x": x}
    check_file(arc, want)
    with zipfile.ZipFile(arc) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    unmount(m)
    check_file(arc, want)
    assert CLONE_LOG in m.stderr(), m.stderr()


def test_compaction_copies(workdir, big_template, big_arrays, mount):
    """Replacing the big array leaves more than 25% dead bytes: the commit
    copies the archive into a new file (compaction), which holds no hole,
    its stored data aligned."""
    arc = reflink_copy(big_template, workdir / "a.npz")
    m = mount(arc)
    small = np.arange(5, dtype=np.uint64)
    np.save(workdir / "small.npy", small)
    run(["cp", workdir / "small.npy", m / "big.npy"])
    want = {**big_arrays, "big": small}
    check_file(arc, want)
    unmount(m)
    assert "compaction" in m.stderr(), m.stderr()
    assert os.path.getsize(arc) < (1 << 20)
    assert not contains(arc, PATTERN_BYTES)
    assert all(data_offset(arc, n + ".npy") % 64 == 0 for n in want)


def test_commit_rewrite_option(workdir, big_template, big_arrays, mount, xfs):
    """-o commit=rewrite: no clone, the whole archive is written."""
    arc = reflink_copy(big_template, workdir / "a.npz")
    free0 = free_bytes(xfs)
    m = mount(arc, "-o", "commit=rewrite")
    want = edit_params(m, big_arrays)
    check_file(arc, want)
    unmount(m)
    assert CLONE_LOG not in m.stderr(), m.stderr()
    assert free0 - free_bytes(xfs) > BIG // 2     # its own copy of the blocks


def data_offset(path, name):
    """Where member name's data starts: its local header's offset, 30
    bytes, the name and the LOCAL extra field (which may differ from the
    central one)."""
    with zipfile.ZipFile(path) as z:
        off = z.getinfo(name).header_offset
    with open(path, "rb") as f:
        f.seek(off)
        head = f.read(30)
    assert head[:4] == b"PK\x03\x04"
    return off + 30 + int.from_bytes(head[26:28], "little") + \
        int.from_bytes(head[28:30], "little")


def test_appended_members_aligned(workdir, mount):
    """Stored data a cloned commit appends starts on 4096 bytes (64 KiB or
    more) or 64 bytes: block-aligned for range clones and mmap; numpy,
    zipfile, unzip and npzfs --check read it."""
    arc = workdir / "a.npz"
    want = {"params": np.arange(64, dtype=np.float64) / 4,
            "tail": np.arange(1000, dtype=np.int32)}
    np.savez(arc, **want)
    m = mount(arc)
    want = edit_params(m, want)
    want["new"] = np.arange(100_000, dtype=np.float64)
    (m / "new.npy").write_bytes(npy_bytes(want["new"]))
    unmount(m)
    assert CLONE_LOG in m.stderr(), m.stderr()
    check_file(arc, {k: want[k] for k in ("params", "tail", "new")})
    assert data_offset(arc, "params.npy") % 64 == 0
    assert data_offset(arc, "new.npy") % 4096 == 0
    r = subprocess.run(npzfs_cmd("--check", arc), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


MMAP_EDIT = r"""
import sys, numpy as np
a = np.load(sys.argv[1], mmap_mode="r+")
for i, v in zip(map(int, sys.argv[2::2]), map(int, sys.argv[3::2])):
    a[i] = v
a.flush()
del a
"""


def test_mmap_edit_patches_in_place(workdir, big_template, big_arrays, mount, xfs):
    """np.load(mmap_mode='r+') edits of the 256 MiB member: the member stays
    where it is, only the changed pages are written (no copy of the member
    on disk or in a spill file), its CRC is right, every byte is numpy's."""
    arc = reflink_copy(big_template, workdir / "a.npz")
    offsets = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    free0 = free_bytes(xfs)
    m = mount(arc)
    n = BIG // 8
    edits = [(0, 7), (n // 2, 123456789), (n // 2 + 1, 5), (n - 1, 99)]
    run(["/usr/bin/python3", "-c", MMAP_EDIT, m / "big.npy"] +
        [str(x) for e in edits for x in e])
    want = dict(big_arrays)
    want["big"] = want["big"].copy()
    for i, v in edits:
        want["big"][i] = v
    check_file(arc, want)
    # an edit through dd, same size, in the middle of a page
    off = npy_data_offset_of(want["big"]) + 8 * (n // 3) + 8
    v = np.array([424242], dtype=np.uint64)
    with open(m / "big.npy", "r+b") as f:
        f.seek(off)
        f.write(v.tobytes())
    want["big"][n // 3 + 1] = 424242
    check_file(arc, want)
    unmount(m)
    check_file(arc, want)
    log = m.stderr()
    assert CLONE_LOG in log and "compaction" not in log, log
    after = {i.filename: i.header_offset for i in zipfile.ZipFile(arc).infolist()}
    assert after == offsets, (after, offsets)       # patched in place
    assert free0 - free_bytes(xfs) < BIG // 8, (free0, free_bytes(xfs))


def npy_data_offset_of(arr):
    """Length of the .npy header numpy writes for arr."""
    return len(npy_bytes(arr)) - arr.nbytes


def test_patch_then_other_commits(workdir, mount, tmp_path):
    """An mmap-style edit kept open across commits of other members (and of
    itself, by fsync): every commit holds what was written so far."""
    arrays = {"a": np.arange(10.0), "b": np.arange(300000, dtype=np.int64),
              "c": np.arange(5, dtype=np.int8)}
    arc = workdir / "a.npz"
    np.savez(arc, **arrays)
    m = mount(arc)
    hdr = npy_data_offset_of(arrays["b"])
    want = {k: v.copy() for k, v in arrays.items()}
    with open(m / "b.npy", "r+b") as f:
        f.seek(hdr + 8 * 1000)
        f.write(np.int64(-1).tobytes())
        want["b"][1000] = -1
        run(["sed", "-i", "2s/.*/7.5/", m / "a.txt"])   # another member
        want["a"][0] = 7.5
        f.flush()
        os.fsync(f.fileno())                            # commits b
        check_file(arc, want)
        f.seek(hdr + 8 * 250000)
        f.write(np.int64(-2).tobytes())
        want["b"][250000] = -2
        run(["sed", "-i", "3s/.*/8.5/", m / "a.txt"])
        want["a"][1] = 8.5
    check_file(arc, want)
    with open(m / "b.npy", "rb") as f:
        assert f.read() == npy_bytes(want["b"])
    unmount(m)
    check_file(arc, want)
