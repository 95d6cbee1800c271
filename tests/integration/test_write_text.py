"""test_write_text.py - arrays written as text (SPEC.md "Writing", "The text
view"): every view of the variety archive written back through the mount
gives the identical array, edited views give the edited arrays, new text
files get their dtype and shape from the header or by inference, and plain
members are rewritten as they are written."""
import shutil
import zipfile

import numpy as np
import pytest

import archives
import npyref
from conftest import VALGRIND, has_long_double
from writeutil import (COMPRESSIONS, DEFLATED, STORED, Snapshot,
                       check_archive, check_views, default_new_method, make_archive,
                       read, render, run, unmount, write_file)

ARRAYS = archives.variety_arrays()
VIEWABLE = sorted(n for n, a in ARRAYS.items() if not a.dtype.hasobject
                  and not (VALGRIND and has_long_double(a.dtype)))


@pytest.fixture(params=COMPRESSIONS)
def variety(request, variety_archives, tmp_path):
    """A private copy of the session's variety archive."""
    d = tmp_path / "data"
    d.mkdir()
    return shutil.copy(variety_archives[request.param], d / "variety.npz")


def member_npy(archive, name):
    with zipfile.ZipFile(archive) as z:
        return z.read(name + ".npy")


def flipped(arr):
    """arr with its elements in reverse C order (same dtype, shape, order)."""
    out = np.ascontiguousarray(arr).reshape(-1)[::-1].copy().reshape(arr.shape)
    return np.asfortranarray(out) if arr.flags.f_contiguous and not arr.flags.c_contiguous else out


def assert_same_npy(got_npy, want_arr, want_dict, what):
    dict_text, _ = npyref.npy_header(got_npy)
    assert dict_text == want_dict, what
    got = npyref.load(got_npy)
    assert got.dtype == want_arr.dtype and got.shape == want_arr.shape, what
    assert got.flags.f_contiguous == want_arr.flags.f_contiguous, what
    assert value_bytes(got) == value_bytes(want_arr), what


def value_bytes(arr):
    """The bytes that hold arr's values, in C order: field by field for
    structured dtypes (padding between fields is undefined), and without
    the padding of x87 long doubles (10 of every 16 bytes carry the value)."""
    if arr.dtype.names is not None:
        return b"".join(value_bytes(arr[f]) for f in arr.dtype.names)
    base = arr.dtype.subdtype[0] if arr.dtype.subdtype else arr.dtype
    raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    if base.kind in "fc" and base in (np.dtype(np.longdouble), np.dtype(np.clongdouble)):
        return raw.reshape(-1, 16)[:, :10].tobytes()
    return raw.tobytes()


def test_views_written_back_unchanged(variety, mount):
    """cat NAME.txt > tmp; cat tmp > NAME.txt for every view: the member is
    rewritten as the identical array (dtype, shape, order, bytes, header)."""
    before = Snapshot(variety)
    dicts = {n: npyref.npy_header(member_npy(variety, n))[0] for n in VIEWABLE}
    m = mount(variety)
    for name in VIEWABLE:
        text = read(m / (name + ".txt"))
        write_file(m / (name + ".txt"), text)
    after = Snapshot(variety)
    assert after.order == before.order
    for name in VIEWABLE:
        assert after.members[name + ".npy"].method == before.members[name + ".npy"].method
        assert_same_npy(member_npy(variety, name), ARRAYS[name], dicts[name], name)
    for name in after.order:
        if name[:-4] not in VIEWABLE:
            assert after.members[name].key() == before.members[name].key(), name
    unmount(m)
    for name in VIEWABLE:
        assert_same_npy(member_npy(variety, name), ARRAYS[name], dicts[name], name)


def test_views_written_back_edited(variety, mount):
    """Write each view as the text of the array with its elements reversed:
    the archive then holds exactly the reversed arrays."""
    before = Snapshot(variety)
    dicts = {n: npyref.npy_header(member_npy(variety, n))[0] for n in VIEWABLE}
    m = mount(variety)
    want = {}
    for name in VIEWABLE:
        want[name] = flipped(ARRAYS[name])
        write_file(m / (name + ".txt"), npyref.render(want[name], dicts[name]).encode())
    for name in VIEWABLE:
        assert_same_npy(member_npy(variety, name), want[name], dicts[name], name)
    unmount(m)
    for name in VIEWABLE:
        assert_same_npy(member_npy(variety, name), want[name], dicts[name], name)
    after = Snapshot(variety)
    assert after.order == before.order
    for name in after.order:
        if name[:-4] not in VIEWABLE:
            assert after.members[name].key() == before.members[name].key(), name


# ---------------------------------------------------------------- edits of particular kinds

@pytest.fixture(params=COMPRESSIONS)
def kinds(request, tmp_path, mount):
    arrays = {
        "run_param": ARRAYS["run_param"],
        "i8_3d": ARRAYS["i8_3d"],
        "U": ARRAYS["U"],
        "M8_s": ARRAYS["M8_s"],
        "c16": ARRAYS["c16"][:4],
        "b1": ARRAYS["b1"],
        "fortran_i8": ARRAYS["fortran_i8"],
        "zerod_f8": ARRAYS["zerod_f8"],
    }
    d = tmp_path / "data"
    d.mkdir()
    arc = make_archive(d / "k.npz", request.param, arrays)
    return arc, Snapshot(arc), arrays, mount(arc)


def test_structured_sed(kinds):
    """SPEC's example: sed -i '3s/0/1/' mnt/run_param.txt."""
    arc, before, arrays, m = kinds
    run(["sed", "-i", "3s/0/1/", m / "run_param.txt"])
    rp = arrays["run_param"].copy()
    rp[0]["RUN_MODE"] = 1
    check_archive(arc, before, changed={"run_param": rp})
    check_views(m, "run_param", rp)
    unmount(m)
    check_archive(arc, before, changed={"run_param": rp})


def test_kind_edits(kinds):
    """sed on a 3-d block, a string, a datetime, a complex, a bool, a
    Fortran-ordered array and a 0-d array."""
    arc, before, arrays, m = kinds
    edits = [
        ("i8_3d.txt", r"s/^16 17 18 19$/-16 17 18 1900/"),
        ("U.txt", r's/^"hello"$/"bonjour \\"x\\""/'),
        ("M8_s.txt", r"s/^1970-01-01T00:00:00$/2038-01-19T03:14:08/"),
        ("c16.txt", r"2s/.*/-1.5-0.25j/"),
        ("b1.txt", r"s/^False$/True/"),
        ("fortran_i8.txt", r"2s/^0 /100 /"),
        ("zerod_f8.txt", r"2s/.*/-0.0/"),
    ]
    for rel, script in edits:
        run(["sed", "-i", script, m / rel])
    want = {k: v.copy(order="K") for k, v in arrays.items() if k != "run_param"}
    want["i8_3d"][1, 1] = [-16, 17, 18, 1900]
    want["U"][0] = 'bonjour "x"'
    want["M8_s"][2] = np.datetime64("2038-01-19T03:14:08")
    want["c16"][0] = complex(-1.5, -0.25)
    want["b1"][1] = True
    want["fortran_i8"][0, 0] = 100
    want["zerod_f8"] = np.array(-0.0)
    check_archive(arc, before, changed=want)
    assert np.load(m / "fortran_i8.npy").flags.f_contiguous
    for name, arr in want.items():
        check_views(m, name, arr)
    unmount(m)
    check_archive(arc, before, changed=want)


# ---------------------------------------------------------------- new text files

INFER = {
    "bools": (b"True\nFalse\nTrue\n", np.array([True, False, True])),
    "ints": (b"1\n-2\n9223372036854775807\n", np.array([1, -2, 2 ** 63 - 1])),
    "floats": (b"1\n2.5\n-inf\n", np.array([1.0, 2.5, -np.inf])),
    "complex": (b"1+2j\n3\n", np.array([1 + 2j, 3 + 0j])),
    "strings": (b'"a"\n"b c"\n', np.array(["a", "b c"])),
    "grid": (b"1 2 3\n4 5 6\n", np.array([[1, 2, 3], [4, 5, 6]])),
}


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_new_text_inferred(tmp_path, mount, compression):
    """No header: dtype inferred (bool, int64, float64, complex128, U), shape
    from the layout."""
    arc = make_archive(tmp_path / "a.npz", compression)
    before = Snapshot(arc)
    m = mount(arc)
    for name, (text, _) in INFER.items():
        write_file(m / (name + ".txt"), text)
    want = {name: arr for name, (_, arr) in INFER.items()}
    check_archive(arc, before, added=want, new_method=default_new_method(before))
    unmount(m)
    check_archive(arc, before, added=want, new_method=default_new_method(before))


def test_new_text_with_header(tmp_path, mount):
    """A header gives dtype, order and shape; n-d blocks are read back."""
    arc = make_archive(tmp_path / "a.npz", "stored")
    before = Snapshot(arc)
    m = mount(arc)
    want = {
        "i2": np.array([[1, -2], [3, 4]], dtype=">i2"),
        "f": np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
        "cube": np.arange(24, dtype="<u2").reshape(2, 3, 4),
        "rec": np.array([(1, 2.5, "ab")], dtype=[("a", "<i4"), ("b", "<f8"), ("c", "<U3")]),
    }
    for name, arr in want.items():
        write_file(m / (name + ".txt"), render(arr).encode())
    check_archive(arc, before, added=want, new_method=STORED)
    assert np.load(m / "f.npy").flags.f_contiguous
    unmount(m)
    check_archive(arc, before, added=want, new_method=STORED)
    with np.load(arc) as z:
        assert z["f"].flags.f_contiguous


# ---------------------------------------------------------------- plain members

def test_plain_members_rewritten(tmp_path, mount):
    """A plain member (notes.md) and a real x.txt member beside x.npy are
    written as bytes; the array x is untouched."""
    arc = tmp_path / "special.npz"
    archives.special_archive(arc, "deflated")
    before = Snapshot(arc)
    m = mount(arc)
    run("echo 'line 4' >> %s" % (m / "notes.md"))
    write_file(m / "x.txt", b"still not an array: garbage\n")
    after = Snapshot(arc)
    assert after.order == before.order
    with zipfile.ZipFile(arc) as z:
        assert z.read("notes.md") == b"# notes\n\nplain text, no view\nline 4\n"
        assert z.read("x.txt") == b"still not an array: garbage\n"
    for name in before.order:
        if name not in ("notes.md", "x.txt"):
            assert after.members[name].key() == before.members[name].key(), name
        else:
            assert after.members[name].method == before.members[name].method == DEFLATED
    unmount(m)
    assert Snapshot(arc).order == before.order
    with zipfile.ZipFile(arc) as z:
        assert z.read("x.txt") == b"still not an array: garbage\n"
        assert np.array_equal(np.load(arc)["x"], np.arange(5))
