"""archives.py - the npz archives the integration tests mount.

All are written by numpy (np.savez / np.savez_compressed), with zipfile only
for what numpy never writes (plain members, real .txt members, directory
entries, other dates, data descriptors).
"""
import io
import struct
import time
import warnings
import zipfile

import numpy as np

COMPRESSIONS = ("stored", "deflated")


def savez(path, arrays, compression):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)        # npy format 3.0 notes
        if compression == "stored":
            np.savez(path, **arrays)
        else:
            np.savez_compressed(path, **arrays)
    return path


def _floats(dt):
    """Special values, extremes, subnormals and random values over the whole
    exponent range of dt, with all mantissa bits in use."""
    fi = np.finfo(dt)
    special = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-5, 1e-4, 1.5e-4, 123.456,
               1e15, 1e16, 1.2345e17, np.nan, np.inf, -np.inf]
    extremes = [fi.max, -fi.max, fi.tiny, -fi.tiny, fi.eps,
                fi.smallest_subnormal, -fi.smallest_subnormal,
                fi.smallest_subnormal * 3]
    rng = np.random.default_rng(7)
    lo = max(int(fi.minexp * 0.30103), -300)
    hi = min(int(fi.maxexp * 0.30103), 300)
    rand = rng.standard_normal(40) * 10.0 ** rng.integers(lo, hi, 40)
    with np.errstate(over="ignore"):
        vals = np.concatenate([np.array(special).astype(dt), np.array(extremes, dtype=dt),
                               rand.astype(dt)])
        return np.concatenate([vals, vals[-40:] / np.array(3, dtype=dt)]).astype(dt)


def _ints(dt):
    ii = np.iinfo(dt)
    vals = [0, 1, ii.min, ii.max, ii.max // 3, ii.min // 7, 42]
    return np.array(vals, dtype=dt)


def _complex(dt):
    part = np.float32 if np.dtype(dt).itemsize == 8 else (
        np.float64 if np.dtype(dt).itemsize == 16 else np.longdouble)
    re = _floats(part)
    im = np.roll(_floats(part), 5)
    out = np.empty(len(re) + 3, dtype=dt)
    out.real[:len(re)] = re
    out.imag[:len(re)] = im
    out[len(re):] = [complex(1.5, 2.0), complex(0.0, -1.0), complex(np.nan, np.nan)]
    return out


def _datetimes():
    out = {}
    fine = np.array(["2024-01-31T12:34:56.789012345", "1969-12-31T23:59:59.999999999",
                     "1970-01-01T00:00:00", "2000-02-29T01:02:03.5", "NaT"], dtype="M8[ns]")
    for unit in ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns"):
        vals = fine.astype("M8[%s]" % unit)
        if unit != "ns":    # a date before 1678, out of range for ns
            old = np.array(["1601-02-03T04:05:06.789"], dtype="M8[ms]").astype("M8[%s]" % unit)
            vals = np.concatenate([vals, old])
        out["M8_" + unit] = vals
    out["M8_as"] = np.array([0, 1, -1, 123456789], dtype="M8[as]")
    out["M8_15m"] = np.array([0, 1, -1, 98765], dtype="M8[15m]")
    out["M8_generic_nat"] = np.array(["NaT", "NaT"], dtype="M8")
    out["M8_0d"] = np.array("2024-01-31T12:00", dtype="M8[m]")
    for unit in ("s", "ns", "D"):
        out["m8_" + unit] = np.array([0, 1, -1, 86400, 2 ** 62, -(2 ** 62)], dtype="m8[%s]" % unit)
    return out


U_VALUES = ["hello", "", "with space", 'quote " here', "back\\slash",
            "new\nline", "tab\there", "café", "日本語", "🙂 emoji", " lead", "trail "]


def variety_arrays():
    """name -> array: every dtype, byte order, layout and special value."""
    rng = np.random.default_rng(12345)
    A = {}
    A["b1"] = np.array([True, False, True, True])
    for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"):
        A[t] = _ints(t)
    for t in ("f2", "f4", "f8"):
        A[t] = _floats(t)
    A["longdouble"] = _floats(np.longdouble)
    A["longdouble_third"] = np.array([np.longdouble(1) / 3, np.longdouble("0.1")])
    A["c8"] = _complex(np.complex64)
    A["c16"] = _complex(np.complex128)
    A["clongdouble"] = _complex(np.clongdouble)
    A["S"] = np.array([b"abc", b"", b"a b", b"\x00\x01z", b"\xff\x80\x7f~"], dtype="S5")
    A["S_quotes"] = np.array([b'say "hi"', b"back\\slash"], dtype="S12")
    A["U"] = np.array(U_VALUES)
    A["V"] = np.array([b"\x00\x01\xab\xff", b"\x10\x20\x30\x40"], dtype="V4")
    A.update(_datetimes())
    A["O"] = np.array([1, "a", None, [1, 2]], dtype=object)
    A["O_record"] = np.array([(1, "x"), (2, None)], dtype=[("a", "<i4"), ("o", "O")])
    # big-endian
    A["be_i4"] = np.array([1, -2, 2 ** 31 - 1, -(2 ** 31)], dtype=">i4")
    A["be_u2"] = np.array([1, 65535, 256], dtype=">u2")
    A["be_f4"] = _floats(">f4")
    A["be_f8"] = _floats(">f8")
    A["be_c16"] = _complex(np.complex128).astype(">c16")
    A["be_U3"] = np.array(["abc", "é", ""], dtype=">U3")
    A["be_M8"] = np.array(["2024-01-31T12:00:00", "NaT"], dtype=">M8[s]")
    # Fortran order
    A["fortran_i8"] = np.asfortranarray(np.arange(12, dtype="i8").reshape(3, 4))
    A["fortran_f8_3d"] = np.asfortranarray(rng.standard_normal((2, 3, 4)))
    A["fortran_U"] = np.asfortranarray(np.array([["a", "bb"], ["ccc", "d d"]]))
    # 0-d
    A["zerod_f8"] = np.array(3.5)
    A["zerod_i4"] = np.array(-7, dtype="i4")
    A["zerod_b1"] = np.array(True)
    A["zerod_U"] = np.array("zero d")
    A["zerod_record"] = np.array((5, 2.5), dtype=[("RUN_MODE", "<i8"), ("ALPHA", "<f8")])
    # empty
    A["empty_f8"] = np.zeros((0,))
    A["empty_3x0"] = np.zeros((3, 0), dtype="i4")
    A["empty_0x3"] = np.zeros((0, 3))
    A["empty_U"] = np.zeros((0,), dtype="U5")
    A["empty_record"] = np.zeros((0,), dtype=[("a", "<i4"), ("b", "<f8")])
    # 1-d .. 4-d
    A["f8_2d"] = rng.standard_normal((6, 5))
    A["f4_2d"] = rng.standard_normal((4, 3)).astype("f4")
    A["i8_2d"] = rng.integers(-10 ** 12, 10 ** 12, (5, 4))
    A["i8_1d"] = rng.integers(-10 ** 15, 10 ** 15, 25)
    A["f4_1d"] = rng.standard_normal(25).astype("f4")
    A["i8_3d"] = np.arange(24, dtype="i8").reshape(2, 3, 4)
    A["f4_4d"] = rng.standard_normal((2, 2, 3, 2)).astype("f4")
    A["b1_3d"] = rng.integers(0, 2, (2, 2, 2)).astype(bool)
    A["U_3d"] = np.array(U_VALUES[:8]).reshape(2, 2, 2)
    A["f8_wide"] = (rng.standard_normal((2000, 40))                 # ~1.7 MB of text:
                    * 10.0 ** rng.integers(-20, 20, (2000, 40)))    # many 64 KiB chunks
    A["U_huge"] = np.array(["x" * 70000 + "é\"", "short"])         # one line > 64 KiB
    A["one_row"] = np.array([[1.0, 2.0, 3.0]])
    A["one_col"] = np.array([[1], [2], [3]])
    # structured
    A["run_param"] = np.array([(0, 0.5), (1, 1e-05), (2, -3.25)],
                              dtype=[("RUN_MODE", "<i8"), ("ALPHA", "<f8")])
    A["nested"] = np.array([(1, (0.5, -1.5), "first one"), (2, (np.nan, np.inf), 'q "x"')],
                           dtype=[("id", "<u4"), ("pos", [("x", "<f4"), ("y", "<f4")]),
                                  ("name", "U10")])
    A["subarray"] = np.array([([1.0, 2.0, 3.0], [[1, 2], [3, 4]], True),
                              ([0.1, -0.0, 1e300], [[-1, -2], [-3, -4]], False)],
                             dtype=[("v", "<f8", (3,)), ("m", "<i2", (2, 2)), ("flag", "?")])
    A["aligned"] = np.array([(1, 2.5, -3), (255, -0.0, 7)],
                            dtype=np.dtype([("a", "u1"), ("b", "<f8"), ("c", "<i2")], align=True))
    A["be_record"] = np.array([(1, 2.5), (-1, np.inf)], dtype=[("x", ">i4"), ("y", ">f8")])
    A["record_2d"] = np.array([[(1, b"ab"), (2, b"c")], [(3, b""), (4, b"\xff")]],
                              dtype=[("n", "<i2"), ("s", "S2")])
    A["record_all"] = np.array([(True, 1.5 + 2j, "2024-01-31", 7, b"\x01\x02")],
                               dtype=[("b", "?"), ("c", "<c16"), ("d", "M8[D]"),
                                      ("t", "m8[s]"), ("v", "V2")])
    A["record_utf8_name"] = np.array([(1, 2)], dtype=[("日", "<i4"), ("é", "<i4")])   # npy 3.0
    wide = np.dtype([("f%04d" % i, "<i4") for i in range(3500)])                   # npy 2.0
    A["record_wide"] = np.arange(2 * 3500, dtype="<i4").view(wide)
    # names
    A["with space"] = np.arange(3)
    A["café"] = np.arange(2.0)
    A["a.b"] = np.array([1.25])
    A["sub/x"] = np.arange(4)
    A["sub/dir/deep"] = np.array(["deep"])
    return A


def variety_archive(path, compression):
    """The variety arrays plus a plain member 'notes.md'."""
    savez(path, variety_arrays(), compression)
    method = zipfile.ZIP_STORED if compression == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(zipfile.ZipInfo("notes.md", date_time=(1980, 1, 1, 0, 0, 0)),
                   b"# notes\nnot an array\n", compress_type=method)
    return path


def special_archive(path, compression):
    """Members numpy never writes: a real x.txt beside x.npy, plain files at
    the top and in a subdirectory, an explicit directory entry, an empty
    member, a member with another date, an archive comment."""
    method = zipfile.ZIP_STORED if compression == "stored" else zipfile.ZIP_DEFLATED
    savez(path, {"x": np.arange(5), "y": np.eye(2), "docs/z": np.array([1.5])}, compression)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("x.txt", b"a real member named x.txt\n", compress_type=method)
        z.writestr("notes.md", b"# notes\n\nplain text, no view\n", compress_type=method)
        z.writestr("docs/README", b"readme without extension\n", compress_type=method)
        z.writestr(zipfile.ZipInfo("emptydir/", date_time=(1980, 1, 1, 0, 0, 0)), b"")
        z.writestr("empty.bin", b"", compress_type=method)
        info = zipfile.ZipInfo("stamp.npy", date_time=(2021, 6, 15, 13, 45, 30))
        z.writestr(info, npy_bytes(np.array([1, 2, 3], dtype="u2")), compress_type=method)
        # as Info-ZIP's zip writes it: Unix attributes, 'UT' and 'ux' extras
        info = zipfile.ZipInfo("infozip.npy", date_time=(2022, 3, 4, 5, 6, 8))
        info.create_system = 3
        info.external_attr = 0o100640 << 16
        mtime = int(time.mktime((2022, 3, 4, 5, 6, 8, 0, 0, -1)))
        info.extra = (struct.pack("<HHBI", 0x5455, 5, 1, mtime)
                      + struct.pack("<HHBBIBI", 0x7875, 11, 1, 4, 1000, 4, 1000))
        z.writestr(info, npy_bytes(np.array([[1.5, -2.0]])), compress_type=method)
        z.comment = b"an archive comment"
    return path


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def zip64_archive(path, n=70000):
    """More than 65,535 members: the member count lives only in the zip64
    end of central directory record."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", npy_bytes(np.arange(5)))
        for i in range(n):
            z.writestr(zipfile.ZipInfo("m%05d.bin" % i, date_time=(1980, 1, 1, 0, 0, 0)),
                       b"%d\n" % i)
        z.writestr("b.npy", npy_bytes(np.eye(3)))
    return path


# name -> member names: odd names numpy never writes.  Members are arange(i+1)
# in .npy form (i: their index), directory entries (ending in '/') empty.
ODD_NAMES = {
    "dotdot": ["../up.npy", "ok.npy"],
    "absolute": ["/abs.npy", "ok.npy"],
    "dot": ["./dot.npy", "ok.npy"],
    "double_slash": ["a//b.npy", "ok.npy"],
    "duplicate": ["dup.npy", "ok.npy", "dup.npy"],
    "file_then_dir": ["f.npy", "f.npy/g.npy", "ok.npy"],
    "dir_then_file": ["d/g.npy", "d", "ok.npy"],
    "dir_entry_and_file": ["t/", "t/x.npy", "t", "ok.npy"],
    "empty_name": ["", "ok.npy"],
    "only_slash": ["/", "ok.npy"],
    "view_name_is_dir": ["v.npy", "v.txt/w.npy", "ok.npy"],
}


def odd_names_archive(path, case):
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore", UserWarning)        # duplicate names
        for i, name in enumerate(ODD_NAMES[case]):
            data = b"" if name.endswith("/") else npy_bytes(np.arange(i + 1))
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


class _Unseekable(io.RawIOBase):
    """A write-only stream zipfile cannot seek: it writes data descriptors."""

    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)


def streamed_archive(path):
    """Members written with data descriptors (general purpose flag bit 3),
    local headers holding zero sizes, as by any streaming zip writer."""
    with open(path, "wb") as f, zipfile.ZipFile(_Unseekable(f), "w") as z:
        for name, arr, method in (("s.npy", np.arange(10.0), zipfile.ZIP_STORED),
                                  ("d.npy", np.arange(1000).reshape(10, 100), zipfile.ZIP_DEFLATED)):
            buf = io.BytesIO()
            np.save(buf, arr)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with z.open(info, "w") as w:
                w.write(buf.getvalue())
    return path


def many_arrays(n):
    return {"a%04d" % i: np.arange(i % 7 + 1, dtype="i8") * i for i in range(n)}
