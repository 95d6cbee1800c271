"""test_csv.py - the CSV view NAME.csv (-o views=txt,csv; SPEC.md "Other
views", README "The CSV view"): np.loadtxt(..., delimiter=',') reads it
exactly for many dtypes and shapes (Fortran order too), pandas.read_csv reads
structured views, every view written back gives the identical array, edits
written with Python's csv module, sed -i and a vim-style save (temporary
file renamed over NAME.csv) land with dtype and shape kept, and ragged rows
or bad values are refused with EINVAL at close, the archive unchanged."""
import csv
import errno
import io
import os
import shutil

import numpy as np
import pytest

import archives
from conftest import VALGRIND, has_long_double
from writeutil import (COMPRESSIONS, Snapshot, check_archive, close_errno,
                       getxattr, load_archive, make_archive, read, render, run,
                       write_file)

ARRAYS = archives.variety_arrays()


def csv_viewable(a):
    """Which arrays have a CSV view (include/csv.h)."""
    if a.dtype.hasobject or a.ndim not in (1, 2):
        return False
    if a.dtype.names is not None:
        return a.ndim == 1 and len(a.dtype.names) > 0
    return a.ndim == 1 or a.shape[1] > 0


VIEWABLE = sorted(n for n, a in ARRAYS.items() if csv_viewable(a)
                  and not (VALGRIND and has_long_double(a.dtype)))

# np.loadtxt reads these exactly: numbers, datetimes, U strings (with
# quotechar='"').  Not: bool (True/False), S bytes, void, long double
# (parsed through a double), structured (pandas reads those).
LOADTXT = sorted(n for n in VIEWABLE if ARRAYS[n].dtype.names is None
                 and ARRAYS[n].dtype.kind in "iufcMmU"
                 and ARRAYS[n].dtype not in (np.dtype(np.longdouble),
                                             np.dtype(np.clongdouble))
                 and ARRAYS[n].size > 0)


@pytest.fixture(scope="module", params=COMPRESSIONS)
def cm(request, variety_archives, module_mount):
    """The variety archive mounted with views=txt,csv, once per module."""
    return module_mount(variety_archives[request.param], "-o", "views=txt,csv")


@pytest.fixture(params=COMPRESSIONS)
def variety(request, variety_archives, tmp_path):
    """A private copy of the session's variety archive."""
    d = tmp_path / "data"
    d.mkdir()
    return shutil.copy(variety_archives[request.param], d / "variety.npz")


def same_values(got, want):
    """Bit for bit, but any NaN equals any NaN (the views write 'nan')."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind in "fc":
        for part in ((lambda a: a.real, lambda a: a.imag) if want.dtype.kind == "c"
                     else (lambda a: a,)):
            g, w = part(got), part(want)
            nan = np.isnan(w)
            assert (np.isnan(g) == nan).all()
            # == and the sign: exact (x87 long doubles have padding bytes)
            assert (g[~nan] == w[~nan]).all()
            assert (np.signbit(g[~nan]) == np.signbit(w[~nan])).all()
    elif want.dtype.kind in "Mm":
        assert np.ascontiguousarray(got).view("i8").tobytes() == \
            np.ascontiguousarray(want).view("i8").tobytes()
    else:
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


@pytest.mark.parametrize("name", LOADTXT)
def test_loadtxt_reads_exactly(cm, name):
    """np.loadtxt(NAME.csv, delimiter=',') gives the array bit for bit."""
    want = ARRAYS[name]
    kw = {"quotechar": '"'} if want.dtype.kind == "U" else {}
    if want.dtype.kind == "U" and any("\n" in s or "\r" in s for s in want.ravel()):
        # loadtxt cannot read a newline inside a quoted field: the csv module
        with open(cm / (name + ".csv"), newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        same_values(np.array(rows, dtype=want.dtype).reshape(want.shape), want)
        return
    got = np.loadtxt(cm / (name + ".csv"), delimiter=",", dtype=want.dtype,
                     ndmin=want.ndim, encoding="utf-8", **kw)
    same_values(got, want)


@pytest.mark.parametrize("name", ["f8", "f4", "f2", "c16", "i8_2d", "f8_2d",
                                  "fortran_i8", "one_col", "one_row", "M8_ms",
                                  "m8_s", "be_f8", "b1"])
def test_csv_is_the_text_body_with_commas(cm, name):
    """For numbers, bools and datetimes the CSV is the text view's body with
    commas for spaces: the same shortest round-trip values."""
    want = ARRAYS[name]
    body = render(want).split("\n", 1)[1]
    assert read(cm / (name + ".csv")).decode() == body.replace(" ", ",")
    assert os.stat(cm / (name + ".csv")).st_size == len(body)


def test_fortran_order_by_logical_index(cm):
    a = ARRAYS["fortran_i8"]
    assert read(cm / "fortran_i8.csv").decode() == "".join(
        ",".join(str(v) for v in row) + "\n" for row in a)


def test_strings_quoted_only_when_needed(tmp_path, mount):
    arrs = {"u": np.array(["plain", "a,b", 'say "hi"', "", "two\nlines", "é"]),
            "s": np.array([b"x", b"a,b", b""], dtype="S3")}
    m = mount(make_archive(tmp_path / "s.npz", "stored", arrs), "-o", "views=csv")
    assert read(m / "u.csv").decode() == \
        'plain\n"a,b"\n"say ""hi"""\n""\n"two\nlines"\né\n'
    assert read(m / "s.csv") == b'x\n"a,b"\n""\n'
    rows = list(csv.reader(io.StringIO(read(m / "u.csv").decode(), newline="")))
    assert [r[0] for r in rows] == list(arrs["u"])


def test_pandas_reads_structured(tmp_path, mount):
    pd = pytest.importorskip("pandas")      # scripts/install-deps: python3-pandas
    r = np.array([("ab", 1.5, [1, 2]), ("c,d", -0.1, [3, -4]), ('q"', np.nan, [0, 0])],
                 dtype=[("name", "U4"), ("val", "<f8"), ("pos", "<i2", (2,))])
    m = mount(make_archive(tmp_path / "r.npz", "stored", {"r": r}), "-o", "views=csv")
    text = read(m / "r.csv").decode()
    assert text.splitlines()[0] == "name,val,pos[0],pos[1]"
    df = pd.read_csv(m / "r.csv", float_precision="round_trip",
                     keep_default_na=False, na_values=["nan"])
    assert list(df.columns) == ["name", "val", "pos[0]", "pos[1]"]
    assert list(df["name"]) == list(r["name"])
    same_values(df["val"].to_numpy(), r["val"])
    assert (df["pos[0]"].to_numpy() == r["pos"][:, 0]).all()
    assert (df["pos[1]"].to_numpy() == r["pos"][:, 1]).all()


def test_every_view_written_back_unchanged(variety, mount):
    """cat NAME.csv > tmp; cat tmp > NAME.csv for every CSV view: the same
    array (dtype, shape, order, values) in the archive."""
    m = mount(variety, "-o", "views=txt,csv")
    for name in VIEWABLE:
        write_file(m / (name + ".csv"), read(m / (name + ".csv")))
    got = load_archive(variety)
    for name in VIEWABLE:
        want = ARRAYS[name]
        g = got[name]
        assert g.dtype == want.dtype and g.shape == want.shape, name
        assert g.flags.f_contiguous == want.flags.f_contiguous, name
        if want.dtype.names is None:
            same_values(g, want)
        else:
            for f in want.dtype.names:
                if want[f].dtype.kind in "fc":
                    same_values(g[f], want[f])
                else:
                    assert g[f].tobytes() == want[f].tobytes(), (name, f)


def test_csv_module_edits_keep_dtype_and_shape(tmp_path, mount):
    """Rows written with Python's csv module (CRLF line ends): more rows,
    same dtype and number of columns; a (N,1) array stays 2-d."""
    arrs = {"m": np.arange(6, dtype="<f4").reshape(2, 3),
            "col": np.array([[1], [2]], dtype=">i2"),
            "r": np.array([("a", 1.5)], dtype=[("name", "U8"), ("val", "<f8")])}
    archive = make_archive(tmp_path / "e.npz", "deflated", arrs)
    m = mount(archive, "-o", "views=txt,csv")
    with open(m / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([[0.5, 1, 2], [3, 4, 5], [6, 7, 1e30]])
    with open(m / "col.csv", "w", newline="") as f:
        csv.writer(f).writerows([[7], [8], [-9]])
    with open(m / "r.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "val"])
        w.writerows([["x,y", 2.25], ['say "hi"', -1], ["", 0.1]])
    got = load_archive(archive)
    assert got["m"].dtype == np.dtype("<f4") and got["m"].shape == (3, 3)
    assert (got["m"] == np.array([[0.5, 1, 2], [3, 4, 5], [6, 7, 1e30]], dtype="f4")).all()
    assert got["col"].dtype == np.dtype(">i2") and got["col"].shape == (3, 1)
    assert got["col"].ravel().tolist() == [7, 8, -9]
    assert got["r"].dtype == arrs["r"].dtype
    assert got["r"]["name"].tolist() == ["x,y", 'say "hi"', ""]
    assert got["r"]["val"].tolist() == [2.25, -1.0, 0.1]
    # both views show the new array
    assert read(m / "m.txt").decode() == render(got["m"])


def test_sed_and_vim_style_save(tmp_path, mount):
    arrs = {"x": np.array([1.0, 2.0, 3.0]), "m": np.arange(4).reshape(2, 2)}
    archive = make_archive(tmp_path / "v.npz", "stored", arrs)
    m = mount(archive, "-o", "views=txt,csv")
    run(["sed", "-i", "s/^2.0$/20.5/", str(m / "x.csv")])
    assert load_archive(archive)["x"].tolist() == [1.0, 20.5, 3.0]
    # an editor's save: a new file beside it, renamed over NAME.csv
    tmp = m / ".m.csv.tmp"
    write_file(tmp, b"5,6\n7,8\n9,10\n")
    os.rename(tmp, m / "m.csv")
    got = load_archive(archive)["m"]
    assert got.dtype == arrs["m"].dtype and got.tolist() == [[5, 6], [7, 8], [9, 10]]
    assert not os.path.exists(tmp)
    # real vim, default settings
    if shutil.which("vim"):
        run(["vim", "-Es", "-u", "NONE", "-c", "%s/^5,6$/50,60/", "-c", "wq",
             str(m / "m.csv")], ok=False)
        assert load_archive(archive)["m"].tolist() == [[50, 60], [7, 8], [9, 10]]


@pytest.mark.parametrize("text, msg", [
    (b"1,2\n3\n", "line 2: 1 field, expected 2"),
    (b"1,2\n3,4,5\n", "line 2, column 3: more than 2 fields"),
    (b"1,2\n3,x\n", "line 2, column 2: bad value 'x' (expected int64)"),
    (b'1,2\n"3,4\n', "line 2, column 1: unterminated quoted field"),
])
def test_bad_csv_refused(tmp_path, mount, text, msg):
    """EINVAL at close, the archive unchanged, the reason in
    user.npzfs.error, and the view shows the unchanged array again."""
    arrs = {"m": np.arange(4).reshape(2, 2)}
    archive = make_archive(tmp_path / "b.npz", "stored", arrs)
    m = mount(archive, "-o", "views=txt,csv")
    before = Snapshot(archive)
    assert close_errno(m / "m.csv", text) == errno.EINVAL
    check_archive(archive, before)
    assert msg in getxattr(m / "m.csv", "error")
    assert msg in getxattr(m / "m.npy", "error")
    assert read(m / "m.csv") == b"0,1\n2,3\n"
    assert msg in m.stderr()


def test_xattrs_on_csv(cm):
    assert getxattr(cm / "f8_2d.csv", "dtype") == "<f8"
    assert getxattr(cm / "f8_2d.csv", "shape") == "(6, 5)"
    assert "user.npzfs.dtype" in os.listxattr(cm / "f8_2d.csv")


def test_big_csv_size_exact_after_open(tmp_path, mount):
    """A view whose bound is over 1 MiB is sized when opened."""
    a = np.random.default_rng(1).standard_normal((30000, 4))
    m = mount(make_archive(tmp_path / "big.npz", "stored", {"a": a}), "-o", "views=csv")
    with open(m / "a.csv", "rb") as f:
        data = f.read()
        assert os.fstat(f.fileno()).st_size == len(data)
    assert os.stat(m / "a.csv").st_size == len(data)
    got = np.loadtxt(io.StringIO(data.decode()), delimiter=",")
    assert got.tobytes() == a.tobytes()
    # a window read from the middle matches
    with open(m / "a.csv", "rb") as f:
        f.seek(len(data) // 2)
        assert f.read(4096) == data[len(data) // 2:len(data) // 2 + 4096]
