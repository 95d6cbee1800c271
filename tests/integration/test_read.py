"""test_read.py - what a mount shows: the tree, bytes, stat, xattrs, numpy and
the shell tools reading it (SPEC.md "What the mount shows", "Tools")."""
import errno
import os
import random
import subprocess
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest

import archives
import npyref
from conftest import VALGRIND, Mounted, has_long_double, read, walk

ARRAYS = archives.variety_arrays()
NAMES = sorted(ARRAYS)
VIEWABLE = [n for n in NAMES if not ARRAYS[n].dtype.hasobject]
OBJECT = [n for n in NAMES if ARRAYS[n].dtype.hasobject]
XATTRS = ("user.npzfs.dtype", "user.npzfs.shape", "user.npzfs.compression")
MAX_HEADER = 1 << 20          # np.load refuses headers > 10000 bytes by default
XATTR_SIZE_MAX = 65536                                   # linux/limits.h
T1980 = time.mktime((1980, 1, 1, 0, 0, 0, 0, 0, -1))    # numpy's member date, local time


# ---------------------------------------------------------------- the tree

def test_tree_matches_archive(vm):
    files, dirs = walk(vm.path)
    assert dirs == vm.dirs
    assert files == set(vm.files)


def test_object_arrays_have_no_view(vm):
    for name in OBJECT:
        assert os.path.exists(vm.path / (name + ".npy"))
        with pytest.raises(FileNotFoundError):
            os.stat(vm.path / (name + ".txt"))


def test_plain_member_has_no_view(vm):
    assert read(vm.path / "notes.md") == vm.member("notes.md")
    assert not os.path.exists(vm.path / "notes.txt")
    assert not os.path.exists(vm.path / "notes.md.txt")


def test_modes_and_owner(vm):
    for rel in vm.files:
        st = os.lstat(vm.path / rel)
        assert (rel, st.st_mode) == (rel, 0o100644)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    for rel in vm.dirs:
        st = os.lstat(vm.path / rel)
        assert (rel, st.st_mode) == (rel, 0o40755)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_subdirectories(vm):
    assert sorted(os.listdir(vm.path / "sub")) == ["dir", "x.npy", "x.txt"]
    assert sorted(os.listdir(vm.path / "sub" / "dir")) == ["deep.npy", "deep.txt"]
    assert read(vm.path / "sub/dir/deep.npy") == vm.member("sub/dir/deep.npy")


# ---------------------------------------------------------------- .npy

@pytest.mark.parametrize("name", NAMES)
def test_npy_bytes(vm, name):
    assert read(vm.path / (name + ".npy")) == vm.member(name + ".npy")


@pytest.mark.parametrize("name", NAMES)
def test_npy_stat(vm, name):
    info = vm.zip.getinfo(name + ".npy")
    st = os.stat(vm.path / (name + ".npy"))
    assert st.st_size == info.file_size
    assert st.st_mtime == npyref.dos_mtime(info) == T1980


def assert_same_array(got, ref):
    """Same dtype, shape, memory order and bytes (ref: numpy's load of the
    member itself, so padding bytes are the archive's too)."""
    assert got.dtype == ref.dtype
    assert got.shape == ref.shape
    assert got.flags.f_contiguous == ref.flags.f_contiguous
    assert got.flags.c_contiguous == ref.flags.c_contiguous
    assert same_values(got, ref)


def same_values(a, b):
    """Equal bytes, field by field for structured dtypes (numpy leaves
    their padding bytes undefined in every copy, np.load's included)."""
    if a.dtype.names is not None:
        return all(same_values(a[n], b[n]) for n in a.dtype.names)
    return (np.ascontiguousarray(a).reshape(-1).view(np.uint8).tobytes()
            == np.ascontiguousarray(b).reshape(-1).view(np.uint8).tobytes())


@pytest.mark.parametrize("name", NAMES)
def test_np_load(vm, name):
    want = ARRAYS[name]
    ref = npyref.load(vm.member(name + ".npy"))
    got = np.load(vm.path / (name + ".npy"), allow_pickle=want.dtype.hasobject,
                  max_header_size=MAX_HEADER)
    if want.dtype.hasobject:
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tolist() == want.tolist()
        return
    assert (ref.dtype, ref.shape) == (want.dtype, want.shape)
    assert_same_array(got, ref)


@pytest.mark.parametrize("name", VIEWABLE)
def test_np_load_mmap(vm, name):
    ref = npyref.load(vm.member(name + ".npy"))
    got = np.load(vm.path / (name + ".npy"), mmap_mode="r", max_header_size=MAX_HEADER)
    try:
        assert isinstance(got, np.memmap)
        assert_same_array(got, ref)
    finally:
        del got


# ---------------------------------------------------------------- .txt

@pytest.mark.parametrize("name", VIEWABLE)
def test_txt_stat(vm, name):
    """The size stat gives is the length of the content after an open, and
    before it for small views (exact text: test_text.py).  A view whose text
    may be big (its bound from the element count and the widest element
    passes 1 MiB) shows 0 until it is opened."""
    rel = name + ".txt"
    st = os.stat(vm.path / rel)
    content = read(vm.path / rel)
    assert st.st_mode == 0o100644
    if len(content) <= 16384:       # bound <= 64 x the text: rendered by stat
        assert st.st_size == len(content)
    else:
        assert st.st_size in (0, len(content))
    assert os.stat(vm.path / rel).st_size == len(content)
    with open(vm.path / rel, "rb") as f:
        assert os.fstat(f.fileno()).st_size == len(content)
    assert st.st_mtime == npyref.dos_mtime(vm.zip.getinfo(name + ".npy"))


PREAD_FILES = ["f8_2d.txt", "U.txt", "U_huge.txt", "run_param.txt", "c16.txt", "f8_wide.txt",
               "f8_wide.npy", "U_huge.npy", "i8_3d.txt"]


@pytest.mark.parametrize("rel", PREAD_FILES)
def test_random_preads(vm, rel):
    """Reads of any size at any offset, past the end included."""
    want = vm.expected(rel)
    rnd = random.Random(rel)
    size = len(want)
    cases = [(0, 1), (size - 1, 1), (size, 10), (size + 100, 10), (0, size + 10)]
    cases += [(rnd.randrange(size), rnd.choice([1, 7, 4096, 70000])) for _ in range(60)]
    with open(vm.path / rel, "rb") as f:
        for off, n in cases:
            assert os.pread(f.fileno(), n, off) == want[off:off + n], (off, n)


def test_small_sequential_reads(vm):
    """dd with a 7-byte block size reassembles the exact view."""
    for rel in ("f8_2d.txt", "U_huge.txt"):
        r = subprocess.run(["dd", "if=%s" % (vm.path / rel), "bs=7", "status=none"],
                           capture_output=True)
        assert r.returncode == 0
        assert r.stdout == vm.expected(rel), rel


def test_concurrent_view_reads(vm):
    """Four threads reading every view in different orders."""
    rels = sorted(r for r, e in vm.files.items() if e.kind == "view" and r != "empty_3x0.txt"
                  and not (VALGRIND and has_long_double(ARRAYS[r[:-4]].dtype)))
    want = {r: vm.expected(r) for r in rels}
    errors = []

    def worker(seed):
        order = rels[:]
        random.Random(seed).shuffle(order)
        for r in order:
            if read(vm.path / r) != want[r]:
                errors.append(r)
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_missing_names(vm):
    for rel in ("nope.npy", "nope.txt", "nope", "sub/nope.npy", "notes.txt", "O.txt", "f8.TXT"):
        with pytest.raises(FileNotFoundError):
            os.stat(vm.path / rel)
        with pytest.raises(FileNotFoundError):
            open(vm.path / rel, "rb")
    with pytest.raises(IsADirectoryError):
        open(vm.path / "sub", "rb")
    with pytest.raises(NotADirectoryError):
        os.listdir(vm.path / "f8.npy")
    with pytest.raises(NotADirectoryError):
        os.stat(vm.path / "f8.npy" / "x")


# ---------------------------------------------------------------- xattrs

@pytest.mark.parametrize("name", NAMES)
def test_xattrs(vm, name):
    data = vm.member(name + ".npy")
    dict_text, _ = npyref.npy_header(data)
    want = {
        "user.npzfs.dtype": npyref.descr_text(dict_text),
        "user.npzfs.shape": npyref.shape_text(dict_text),
        "user.npzfs.compression": vm.compression,
    }
    want_dtype = ARRAYS[name].dtype
    if want_dtype.names is None:
        assert want["user.npzfs.dtype"] == want_dtype.str
    views = [name + ".npy"] + ([] if want_dtype.hasobject else [name + ".txt"])
    for view in views:
        p = vm.path / view
        w = dict(want)
        assert set(XATTRS) <= set(os.listxattr(p)), view
        if len(w["user.npzfs.dtype"].encode()) > XATTR_SIZE_MAX:
            # npy 2.0 header of 3,500 fields: more than the kernel passes on
            with pytest.raises(OSError) as exc:
                os.getxattr(p, "user.npzfs.dtype")
            assert exc.value.errno == errno.E2BIG
            del w["user.npzfs.dtype"]
        got = {k: os.getxattr(p, k).decode("utf-8") for k in w}
        assert got == w, view


def test_xattr_examples(vm):
    g = os.getxattr
    assert g(vm.path / "f8_2d.npy", "user.npzfs.dtype") == b"<f8"
    assert g(vm.path / "f8_2d.txt", "user.npzfs.shape") == b"(6, 5)"
    assert g(vm.path / "b1.npy", "user.npzfs.dtype") == b"|b1"
    assert g(vm.path / "b1.txt", "user.npzfs.shape") == b"(4,)"
    assert g(vm.path / "zerod_f8.txt", "user.npzfs.shape") == b"()"
    assert g(vm.path / "M8_ns.npy", "user.npzfs.dtype") == b"<M8[ns]"
    assert g(vm.path / "run_param.txt", "user.npzfs.dtype") == \
        b"[('RUN_MODE', '<i8'), ('ALPHA', '<f8')]"
    assert g(vm.path / "run_param.npy", "user.npzfs.compression") == vm.compression.encode()


def test_getfattr_dump(vm):
    r = subprocess.run(["getfattr", "-d", str(vm.path / "f8_2d.npy")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'user.npzfs.dtype="<f8"' in lines
    assert 'user.npzfs.shape="(6, 5)"' in lines
    assert 'user.npzfs.compression="%s"' % vm.compression in lines


# ---------------------------------------------------------------- tools

def test_cat(vm):
    for rel in ("f8_2d.npy", "f8_2d.txt", "U.txt", "notes.md", "sub/dir/deep.txt"):
        r = subprocess.run(["cat", str(vm.path / rel)], capture_output=True)
        assert r.returncode == 0
        assert r.stdout == vm.expected(rel), rel


@pytest.mark.parametrize("rel", ["f8.txt", "i8_3d.txt", "U.txt", "run_param.txt", "c16.txt"])
def test_head_tail_wc_grep(vm, rel):
    p = str(vm.path / rel)
    want = vm.expected(rel)
    lines = want.splitlines(keepends=True)
    r = subprocess.run(["head", "-n", "3", p], capture_output=True)
    assert r.stdout == b"".join(lines[:3])
    r = subprocess.run(["tail", "-n", "2", p], capture_output=True)
    assert r.stdout == b"".join(lines[-2:])
    r = subprocess.run(["wc", "-c", p], capture_output=True, text=True)
    assert int(r.stdout.split()[0]) == len(want) == os.stat(p).st_size
    r = subprocess.run(["wc", "-l", p], capture_output=True, text=True)
    assert int(r.stdout.split()[0]) == want.count(b"\n")
    r = subprocess.run(["grep", "-c", "-e", "-", p], capture_output=True, text=True)
    assert int(r.stdout) == sum(1 for line in lines if b"-" in line)


def test_less_without_tty(vm):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LESS")}
    for rel in ("f4_2d.txt", "nested.txt"):
        r = subprocess.run(["less", "-F", "-X", str(vm.path / rel)], capture_output=True,
                           env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0
        assert r.stdout == vm.expected(rel)


def test_cp_r(vm, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(["cp", "-r", str(vm.path) + "/", str(out)], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    files, dirs = walk(out)
    assert files == set(vm.files) and dirs == vm.dirs
    for rel in vm.files:
        assert read(out / rel) == read(vm.path / rel), rel
        if vm.files[rel].kind == "member":
            assert read(out / rel) == vm.member(rel), rel


def test_tar(vm, tmp_path):
    """tar reads st_size bytes of each file: sizes must be exact."""
    tar = tmp_path / "m.tar"
    r = subprocess.run(["tar", "-cf", str(tar), "-C", str(vm.path), "."],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    with tarfile.open(tar) as t:
        got = {m.name[2:]: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert set(got) == set(vm.files)
    for rel, data in got.items():
        assert data == read(vm.path / rel), rel


# ---------------------------------------------------------------- special members

@pytest.fixture(scope="module", params=archives.COMPRESSIONS)
def special(request, tmp_path_factory, module_mount):
    archive = archives.special_archive(
        tmp_path_factory.mktemp("special") / "special.npz", request.param)
    m = Mounted(archive, module_mount(archive), request.param)
    yield m
    m.zip.close()


def test_special_tree(special):
    files, dirs = walk(special.path)
    assert dirs == {"", "docs", "emptydir"}
    assert files == {"x.npy", "x.txt", "y.npy", "y.txt", "docs/z.npy", "docs/z.txt",
                     "docs/README", "notes.md", "empty.bin", "stamp.npy", "stamp.txt",
                     "infozip.npy", "infozip.txt"}
    assert set(files) == set(special.files)
    for rel in files:
        assert read(special.path / rel) == special.expected(rel), rel
        assert os.stat(special.path / rel).st_mode == 0o100644, rel
    for rel in dirs:
        assert os.stat(special.path / rel).st_mode == 0o40755, rel


def test_real_txt_member_wins_over_view(special):
    assert read(special.path / "x.txt") == special.member("x.txt") == b"a real member named x.txt\n"
    assert os.stat(special.path / "x.txt").st_size == len(special.member("x.txt"))
    assert os.listdir(special.path).count("x.txt") == 1
    assert read(special.path / "x.npy") == special.member("x.npy")


def test_empty_member_and_dir(special):
    assert os.stat(special.path / "empty.bin").st_size == 0
    assert read(special.path / "empty.bin") == b""
    assert os.listdir(special.path / "emptydir") == []


def test_mtime_from_zip_entry(special):
    want = time.mktime((2021, 6, 15, 13, 45, 30, 0, 0, -1))
    assert os.stat(special.path / "stamp.npy").st_mtime == want
    assert os.stat(special.path / "stamp.txt").st_mtime == want
    assert os.stat(special.path / "x.npy").st_mtime == T1980
    want = time.mktime((2022, 3, 4, 5, 6, 8, 0, 0, -1))     # DOS time and 'UT' agree
    assert os.stat(special.path / "infozip.npy").st_mtime == want


def test_streamed_archive(tmp_path, mount):
    """Members with data descriptors (sizes only in the central directory)."""
    archive = archives.streamed_archive(tmp_path / "streamed.npz")
    m = Mounted(archive, mount(archive))
    with m.zip:
        assert walk(m.path)[0] == set(m.files) == {"s.npy", "s.txt", "d.npy", "d.txt"}
        for rel in m.files:
            assert read(m.path / rel) == m.expected(rel), rel
        assert np.array_equal(np.load(m.path / "d.npy"), np.arange(1000).reshape(10, 100))


# ---------------------------------------------------------------- 5,000 members

MANY = 5000


@pytest.fixture(scope="module", params=archives.COMPRESSIONS)
def many(request, tmp_path_factory, module_mount):
    archive = archives.savez(tmp_path_factory.mktemp("many") / "many.npz",
                             archives.many_arrays(MANY), request.param)
    m = Mounted(archive, module_mount(archive), request.param)
    yield m
    m.zip.close()


def test_many_members_listing(many):
    names = os.listdir(many.path)
    assert len(names) == 2 * MANY
    assert set(names) == set(many.files)
    r = subprocess.run(["ls", "-l", str(many.path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    assert len(rows) == 2 * MANY
    assert all(row.startswith("-rw-r--r--") for row in rows)


def test_many_members_spot_check(many):
    rnd = random.Random(5)
    want = archives.many_arrays(MANY)
    for i in rnd.sample(range(MANY), 60) + [0, MANY - 1]:
        name = "a%04d" % i
        for rel in (name + ".npy", name + ".txt"):
            assert read(many.path / rel) == many.expected(rel), rel
            assert os.stat(many.path / rel).st_size == len(many.expected(rel)), rel
        assert np.array_equal(np.load(many.path / (name + ".npy")), want[name])


# ---------------------------------------------------------------- zip64, odd names

def test_zip64_member_count(tmp_path, mount):
    archive = archives.zip64_archive(tmp_path / "zip64.npz")
    m = Mounted(archive, mount(archive))
    with m.zip:
        names = os.listdir(m.path)
        assert len(names) == 70000 + 4
        assert set(names) == set(m.files)
        for rel in ("a.npy", "a.txt", "b.npy", "b.txt", "m00000.bin", "m12345.bin", "m69999.bin"):
            assert read(m.path / rel) == m.expected(rel), rel


def normalized(name):
    """A member name as a path: '' and '.' components dropped; None when
    it has none left or climbs with '..'."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if not parts or ".." in parts else "/".join(parts)


@pytest.mark.parametrize("case", sorted(archives.ODD_NAMES))
def test_odd_member_names(tmp_path, mount, case):
    """Whatever npzfs decides to show of odd names, every file it shows is
    exactly a member (the last of duplicates, as zipfile and np.load read
    it) or the view of one, and ordinary members are all there."""
    archive = archives.odd_names_archive(tmp_path / (case + ".npz"), case)
    m = mount(archive)
    files, _ = walk(m.path)
    assert "ok.npy" in files and "ok.txt" in files
    with zipfile.ZipFile(archive) as z:
        by_path = {}
        for info in z.infolist():            # later duplicates win
            if not info.filename.endswith("/") and normalized(info.filename):
                by_path[normalized(info.filename)] = info
        for rel in files:
            got = read(m.path / rel)
            if rel in by_path:
                assert got == z.read(by_path[rel]), rel
            else:
                npy = rel[:-4] + ".npy"
                assert rel.endswith(".txt") and npy in files, rel
                data = read(m.path / npy)
                dict_text, _ = npyref.npy_header(data)
                assert got == npyref.render(npyref.load(data), dict_text).encode(), rel
