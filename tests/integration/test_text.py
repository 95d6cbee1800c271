"""test_text.py - the text views (SPEC.md "The text view"): exact text for
small arrays, every view of the variety archive against the reference
renderer (npyref.render), element-wise read-back, and np.loadtxt."""
import io
import os

import numpy as np
import pytest

import archives
import npyref
from conftest import VALGRIND, Mounted, has_long_double, read, skip_long_double_under_valgrind

ARRAYS = archives.variety_arrays()
VIEWABLE = sorted(n for n, a in ARRAYS.items() if not a.dtype.hasobject)
# A (3, 0) array may show three empty rows or none: test_empty_views.
EXACT_VIEWS = [n for n in VIEWABLE if n != "empty_3x0"]
LOADTXT = sorted(n for n in VIEWABLE
                 if ARRAYS[n].dtype.kind in "iuf" and ARRAYS[n].dtype.itemsize <= 8
                 and ARRAYS[n].ndim in (1, 2) and ARRAYS[n].size > 0)


def hdr(descr, shape, fortran=False):
    return "# {'descr': %s, 'fortran_order': %s, 'shape': %s, }\n" % (descr, fortran, shape)


# name -> (array, exact text view).  These are decisions of SPEC.md, written
# out by hand; test_reference_agrees_with_literals keeps npyref honest.
EXACT = {
    "f8_2x3": (np.array([[0.1, 1.0, 1e-05], [-0.0, np.nan, np.inf]]),
               hdr("'<f8'", "(2, 3)") + "0.1 1.0 1e-05\n-0.0 nan inf\n"),
    "f8_repr": (np.array([-np.inf, 1e16, 1e15, 123.456, 5e-324, 1.7976931348623157e308,
                          0.0001, 0.00012, 1e22, 2.5e-7]),
                hdr("'<f8'", "(10,)") + "-inf\n1e+16\n1000000000000000.0\n123.456\n5e-324\n"
                "1.7976931348623157e+308\n0.0001\n0.00012\n1e+22\n2.5e-07\n"),
    "f4": (np.array([0.1, 1 / 3, 16777216, 1e-45, 3.4028235e38, -2.5], dtype="f4"),
           hdr("'<f4'", "(6,)") + "0.1\n0.33333334\n16777216.0\n1e-45\n3.4028235e+38\n-2.5\n"),
    "f2": (np.array([0.1, 65504, 6e-08, -0.0, 1.5], dtype="f2"),
           hdr("'<f2'", "(5,)") + "0.1\n65500.0\n6e-08\n-0.0\n1.5\n"),
    "longdouble": (np.array([np.longdouble(1) / 3, np.longdouble("0.1"), 2.0], dtype=np.longdouble),
                   hdr("'%s'" % np.dtype(np.longdouble).str, "(3,)")
                   + "0.33333333333333333334\n0.1\n2.0\n"),
    "i8_0d": (np.array(-42), hdr("'<i8'", "()") + "-42\n"),
    "u8": (np.array([0, 18446744073709551615], dtype="u8"),
           hdr("'<u8'", "(2,)") + "0\n18446744073709551615\n"),
    "i1": (np.array([-128, 127], dtype="i1"), hdr("'|i1'", "(2,)") + "-128\n127\n"),
    "b1": (np.array([True, False]), hdr("'|b1'", "(2,)") + "True\nFalse\n"),
    "c16": (np.array([1.5 + 2j, complex(0.0, -1.0), complex(np.nan, np.nan), complex(-0.0, np.inf)]),
            hdr("'<c16'", "(4,)") + "1.5+2.0j\n0.0-1.0j\nnan+nanj\n-0.0+infj\n"),
    "c8": (np.array([0.1 + 0.2j], dtype="c8"), hdr("'<c8'", "(1,)") + "0.1+0.2j\n"),
    "U": (np.array(['a "b"\n', "tab\tx", "back\\", "café 🙂", "", "two words"]),
          hdr("'<U9'", "(6,)")
          + '"a \\"b\\"\\n"\n"tab\\tx"\n"back\\\\"\n"café 🙂"\n""\n"two words"\n'),
    "S": (np.array([b"abc", b"x\x00\xff", b"a b"]),
          hdr("'|S3'", "(3,)") + 'b"abc"\nb"x\\x00\\xff"\nb"a b"\n'),
    "V": (np.array([b"\x01\xab", b"\x00\xff"], dtype="V2"), hdr("'|V2'", "(2,)") + "0x01ab\n0x00ff\n"),
    "M8_m": (np.array(["2024-01-31T12:00", "NaT"], dtype="M8[m]"),
             hdr("'<M8[m]'", "(2,)") + "2024-01-31T12:00\nNaT\n"),
    "M8_D": (np.array(["2024-01-31", "1969-12-31"], dtype="M8[D]"),
             hdr("'<M8[D]'", "(2,)") + "2024-01-31\n1969-12-31\n"),
    "M8_s": (np.array(["1969-12-31T23:59:59"], dtype="M8[s]"),
             hdr("'<M8[s]'", "(1,)") + "1969-12-31T23:59:59\n"),
    "M8_ms": (np.array(["2024-01-31T12:00:00.250"], dtype="M8[ms]"),
              hdr("'<M8[ms]'", "(1,)") + "2024-01-31T12:00:00.250\n"),
    "m8_s": (np.array([0, -5, 86400], dtype="m8[s]"), hdr("'<m8[s]'", "(3,)") + "0\n-5\n86400\n"),
    "run_param": (np.array([(1, 0.5), (2, 1e-05)], dtype=[("RUN_MODE", "<i8"), ("ALPHA", "<f8")]),
                  hdr("[('RUN_MODE', '<i8'), ('ALPHA', '<f8')]", "(2,)")
                  + "# columns: RUN_MODE ALPHA\n1 0.5\n2 1e-05\n"),
    "record_flat": (np.array([(7, [0.5, -1.0], (3, True), [[1, 2], [3, 4]], "a b")],
                             dtype=[("a", "<i4"), ("pos", "<f8", (2,)),
                                    ("n", [("x", "u1"), ("y", "?")]), ("m", "<i2", (2, 2)),
                                    ("s", "<U3")]),
                    hdr("[('a', '<i4'), ('pos', '<f8', (2,)), ('n', [('x', '|u1'), ('y', '|b1')]), "
                        "('m', '<i2', (2, 2)), ('s', '<U3')]", "(1,)")
                    + "# columns: a pos[0] pos[1] n.x n.y m[0,0] m[0,1] m[1,0] m[1,1] s\n"
                    + '7 0.5 -1.0 3 True 1 2 3 4 "a b"\n'),
    "record_padded": (np.array([(1, 2.5)], dtype=np.dtype([("a", "u1"), ("b", "<f8")], align=True)),
                      hdr("[('a', '|u1'), ('', '|V7'), ('b', '<f8')]", "(1,)")
                      + "# columns: a b\n1 2.5\n"),
    "record_0d": (np.array((3, 0.25), dtype=[("x", "<i2"), ("y", "<f4")]),
                  hdr("[('x', '<i2'), ('y', '<f4')]", "()") + "# columns: x y\n3 0.25\n"),
    "i8_3d": (np.arange(12).reshape(2, 2, 3),
              hdr("'<i8'", "(2, 2, 3)")
              + "# [0, :, :]\n0 1 2\n3 4 5\n\n# [1, :, :]\n6 7 8\n9 10 11\n"),
    "i8_4d": (np.arange(4).reshape(2, 1, 1, 2),
              hdr("'<i8'", "(2, 1, 1, 2)") + "# [0, 0, :, :]\n0 1\n\n# [1, 0, :, :]\n2 3\n"),
    "fortran": (np.asfortranarray(np.arange(6).reshape(2, 3)),
                hdr("'<i8'", "(2, 3)", fortran=True) + "0 1 2\n3 4 5\n"),
    "fortran_3d": (np.asfortranarray(np.arange(8).reshape(2, 2, 2)),
                   hdr("'<i8'", "(2, 2, 2)", fortran=True)
                   + "# [0, :, :]\n0 1\n2 3\n\n# [1, :, :]\n4 5\n6 7\n"),
    "be_i4": (np.array([1, -2], dtype=">i4"), hdr("'>i4'", "(2,)") + "1\n-2\n"),
    "be_f8": (np.array([0.1, -np.inf], dtype=">f8"), hdr("'>f8'", "(2,)") + "0.1\n-inf\n"),
    "be_U3": (np.array(["abc", "é"], dtype=">U3"), hdr("'>U3'", "(2,)") + '"abc"\n"é"\n'),
    "empty": (np.zeros((0,)), hdr("'<f8'", "(0,)")),
    "empty_0x3": (np.zeros((0, 3)), hdr("'<f8'", "(0, 3)")),
}


@pytest.fixture(scope="module")
def exact(tmp_path_factory, module_mount):
    archive = archives.savez(tmp_path_factory.mktemp("exact") / "exact.npz",
                             {k: a for k, (a, _) in EXACT.items()}, "stored")
    m = Mounted(archive, module_mount(archive))
    yield m
    m.zip.close()


def assert_same_text(got, want):
    """Equal bytes; on a difference, name the first differing line."""
    if got == want:
        return
    g, w = got.split(b"\n"), want.split(b"\n")
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            pytest.fail("line %d differs:\n got  %r\n want %r" % (i + 1, a, b), pytrace=False)
    pytest.fail("got %d lines, want %d; last got %r, last want %r"
                % (len(g), len(w), g[-2:], w[-2:]), pytrace=False)


# ---------------------------------------------------------------- sizes

def test_view_sizes_before_open(vm):
    """ls -l renders small views on the spot (text bound <= 1 MiB): sizes
    are exact before any open; bigger ones show 0 until opened."""
    for name in EXACT_VIEWS:
        if VALGRIND and has_long_double(ARRAYS[name].dtype):
            continue
        rel = name + ".txt"
        want = len(vm.expected(rel))
        if want > 16384:    # bound (elements x widest element) may pass 1 MiB
            assert (rel, os.stat(vm.path / rel).st_size) in ((rel, 0), (rel, want))
            continue
        assert (rel, os.stat(vm.path / rel).st_size) == (rel, want)
    # the bound passes 1 MiB: not rendered by stat (2 x U70002: 10 bytes a
    # character at most; f8_wide: 1.7 MB of text)
    assert os.stat(vm.path / "U_huge.txt").st_size == 0
    assert os.stat(vm.path / "f8_wide.txt").st_size == 0


# ---------------------------------------------------------------- exact literals

def test_reference_agrees_with_literals():
    for name, (arr, text) in EXACT.items():
        buf = io.BytesIO()
        np.save(buf, arr)
        dict_text, _ = npyref.npy_header(buf.getvalue())
        assert npyref.render(arr, dict_text) == text, name


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_text(exact, name):
    skip_long_double_under_valgrind(EXACT[name][0].dtype)
    want = EXACT[name][1].encode("utf-8")
    assert_same_text(read(exact.path / (name + ".txt")), want)
    assert os.stat(exact.path / (name + ".txt")).st_size == len(want)


# ---------------------------------------------------------------- every view

@pytest.mark.parametrize("name", EXACT_VIEWS)
def test_view_matches_reference(vm, name):
    skip_long_double_under_valgrind(ARRAYS[name].dtype)
    rel = name + ".txt"
    assert_same_text(read(vm.path / rel), vm.expected(rel))


@pytest.mark.parametrize("name", VIEWABLE)
def test_view_reads_back(vm, name):
    """Every token parses back to the element's exact bytes, in C order."""
    arr = ARRAYS[name]
    skip_long_double_under_valgrind(arr.dtype)
    text = read(vm.path / (name + ".txt")).decode("utf-8")
    lines = text.split("\n")
    dict_text, _ = npyref.npy_header(vm.member(name + ".npy"))
    assert lines[0] == "# " + dict_text
    rows = npyref.body_tokens(text)
    want = list(npyref.element_tokens(arr))
    if arr.dtype.names is None and arr.ndim >= 2:     # one row per line
        flat = [tok for row in rows for tok in row]
        ncol = arr.shape[-1]
        assert all(len(row) == ncol for row in rows)
        rows = [[tok] for tok in flat]
    if arr.size == 0:
        assert rows == [] or all(row == [] for row in rows)
        return
    assert len(rows) == len(want)
    for i, (row, elem) in enumerate(zip(rows, want)):
        assert len(row) == len(elem), (i, row)
        for tok, (_, dt, raw) in zip(row, elem):
            got = npyref.parse_token(tok, dt)
            assert npyref.same_element(dt, got, raw), (i, tok, dt, raw)


@pytest.mark.parametrize("name", LOADTXT)
def test_loadtxt(vm, name):
    want = ARRAYS[name]
    native = want.dtype.newbyteorder("=")
    got = np.loadtxt(vm.path / (name + ".txt"), dtype=native, ndmin=want.ndim)
    assert got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want, dtype=native).tobytes()


def test_loadtxt_examples(vm):
    got = np.loadtxt(vm.path / "f8_2d.txt")
    assert np.array_equal(got, ARRAYS["f8_2d"])
    got = np.loadtxt(vm.path / "i8_1d.txt", dtype=np.int64)
    assert np.array_equal(got, ARRAYS["i8_1d"])
    got = np.loadtxt(vm.path / "f4_2d.txt", dtype=np.float32)
    assert np.array_equal(got, ARRAYS["f4_2d"])
    got = np.loadtxt(vm.path / "run_param.txt",
                     dtype=[("RUN_MODE", "<i8"), ("ALPHA", "<f8")])
    assert got.tobytes() == ARRAYS["run_param"].tobytes()


def test_empty_views(vm):
    for name in ("empty_f8", "empty_U", "empty_0x3", "empty_record"):
        want = vm.expected(name + ".txt")
        assert read(vm.path / (name + ".txt")) == want
    # (3, 0): three empty rows or none; nothing but the header has a token.
    text = read(vm.path / "empty_3x0.txt").decode()
    head, _, body = text.partition("\n")
    assert head == "# " + npyref.npy_header(vm.member("empty_3x0.npy"))[0]
    assert body.strip() == ""
