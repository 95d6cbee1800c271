#!/usr/bin/python3
"""make_npy_corpus.py - .npy headers written by numpy, for tests and fuzzing.

  scripts/make_npy_corpus.py [DIR]     write the seed corpus for
                                       tests/fuzz/fuzz_npy_header (default
                                       tests/fuzz/corpus/fuzz_npy_header)
  scripts/make_npy_corpus.py --c       print the C table of numpy headers
                                       pasted into tests/unit/test_npy.c

Each seed is a real np.save() header plus a few data bytes; a handful of
broken headers follow.  Output is deterministic.
"""
import io
import os
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # "Stored array in format 3.0"


def padded(names, formats, offsets, itemsize):
    return np.dtype({"names": names, "formats": formats,
                     "offsets": offsets, "itemsize": itemsize})


# (name, dtype, shape, fortran_order)
CASES = [
    ("f8_2x3", "<f8", (2, 3), False),
    ("f8_be", ">f8", (4,), False),
    ("f4_fortran", "<f4", (3, 4), True),
    ("f2", "<f2", (5,), False),
    ("f16", np.longdouble, (2,), False),
    ("b1", "?", (7,), False),
    ("i1", "i1", (3,), False),
    ("u1", "u1", (3,), False),
    ("i2_be", ">i2", (2, 2), False),
    ("i4", "<i4", (10,), False),
    ("i8_0d", "<i8", (), False),
    ("u2", "<u2", (1,), False),
    ("u4_be", ">u4", (0,), False),
    ("u8", "<u8", (3, 0), False),
    ("c8", "<c8", (2,), False),
    ("c16_be", ">c16", (2,), False),
    ("c32", np.clongdouble, (1,), False),
    ("S3", "S3", (4,), False),
    ("U5", "<U5", (2,), False),
    ("U1_be", ">U1", (2,), False),
    ("V8", "V8", (2,), False),
    ("O", "O", (2,), False),
    ("M8_generic", "M8", (2,), False),
    ("M8_ns", "<M8[ns]", (3,), False),
    ("M8_D", "<M8[D]", (3,), False),
    ("m8_10s_be", ">m8[10s]", (3,), False),
    ("m8_us", "<m8[us]", (1, 1, 1), False),
    ("big_dim", "<f8", (12345678901234,), False),
    ("fortran_3d", "<i4", (2, 3, 40000), True),
    ("fortran_big", "<u2", (5, 1234567890123456), True),
    ("rec", [("a", "<i8"), ("pos", "<f4", (2,)), ("name", "S5")], (3,), False),
    ("rec_nested", [("id", "<u4"), ("n", [("x", ">i2"), ("y", "S3")], (2,))],
     (2,), False),
    ("rec_padding", padded(["a", "b"], ["<i4", "u1"], [0, 8], 16), (3,), False),
    ("rec_title", [(("the title", "a"), "<i4"), ("b", "<f8", (2, 3))], (2,), False),
    ("rec_quotes", [("it's", "<i4"), ('a"b\\', "<i2")], (1,), False),
    ("rec_latin1", [("\xe9t\xe9", "<f4")], (2,), False),
    ("rec_utf8", [("\u20ac", "<f4"), ("\U0001f600", "u1")], (2,), False),
    ("rec_escapes", [("tab\there", "<i4"), ("\x7f\xa0\xad", "<i4")], (1,), False),
    ("rec_empty", [], (3,), False),
    ("rec_object", [("o", "O"), ("x", "<f8")], (2,), False),
    ("rec_datetime", [("t", "<M8[ms]"), ("d", ">m8[25us]")], (2,), False),
    ("rec_deep", [("a", [("b", [("c", [("d", "<i2")])])])], (1,), False),
    ("v2_many_fields", [("field_%04d" % i, "<i4") for i in range(3000)], (1,), False),
]


def header(dtype, shape, fortran):
    """The header np.save() writes for an array, without allocating it."""
    dt = np.dtype(dtype)
    d = {"descr": np.lib.format.dtype_to_descr(dt),
         "fortran_order": fortran, "shape": shape}
    f = io.BytesIO()
    np.lib.format._write_array_header(f, d, None)
    hdr = f.getvalue()
    if np.prod(shape) * dt.itemsize < 1 << 20:  # check against np.save
        a = np.zeros(shape, dtype=dt, order="F" if fortran else "C")
        g = io.BytesIO()
        np.save(g, a)
        assert g.getvalue()[:len(hdr)] == hdr, (dtype, shape)
    return hdr, hdr + bytes(range(1, 9))


BROKEN = [
    ("bad_magic", b"\x93NUMPZ\x01\x00\x10\x00{}              \n"),
    ("truncated_magic", b"\x93NUM"),
    ("bad_version", b"\x93NUMPY\x04\x00\x10\x00{}              \n"),
    ("past_end", b"\x93NUMPY\x01\x00\x88\x13{'descr': '<f8',"),
    ("missing_key", b"\x93NUMPY\x01\x00\x2c\x00{'descr': '<f8', 'fortran_order': False, }\n"),
    ("extra_key", b"\x93NUMPY\x01\x00\x3c\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), 'x': 1}\n"),
    ("bad_shape", b"\x93NUMPY\x01\x00\x36\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3}\n"),
    ("neg_dim", b"\x93NUMPY\x01\x00\x36\x00{'descr': '<f8', 'fortran_order': False, 'shape': (-2,)}\n"),
    ("overflow", b"\x93NUMPY\x01\x00\x4c\x00{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}\n"),
    ("deep", b"\x93NUMPY\x01\x00\x46\x00{'descr': " + b"[" * 40 + b"]" * 40 + b"}\n"),
    ("bad_utf8_v3", b"\x93NUMPY\x03\x00\x40\x00\x00\x00{'descr': [('\xff', '<i4')], 'fortran_order': False, 'shape': (1,), }\n"),
    ("python2_long", b"\x93NUMPY\x01\x00\x40\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }\n"),
]


def write_corpus(out):
    os.makedirs(out, exist_ok=True)
    for name, dtype, shape, fortran in CASES:
        hdr, data = header(dtype, shape, fortran)
        if len(hdr) > 2048:
            continue  # keep seeds small; v2 is covered by the unit tests
        with open(os.path.join(out, name + ".npy"), "wb") as f:
            f.write(data[:len(hdr) + 8])
    for name, data in BROKEN:
        with open(os.path.join(out, "broken_" + name + ".npy"), "wb") as f:
            f.write(data)


def c_string(b):
    out, line, hexed = [], '"', False
    for c in b:
        ch = chr(c)
        if c == 0x22 or c == 0x5c:
            s = "\\" + ch
        elif c == 0x0a:
            s = "\\n"
        elif 0x20 <= c < 0x7f and not (hexed and ch in "0123456789abcdefABCDEF"):
            s = ch
        else:
            s = "\\x%02x" % c
        hexed = s.startswith("\\x")
        if len(line) + len(s) > 70:
            out.append(line + '"')
            line, hexed = '"', False
        line += s
    out.append(line + '"')
    return "\n\t  ".join(out)


def write_c():
    print("/* Generated by scripts/make_npy_corpus.py --c (numpy %s). */"
          % np.__version__)
    print("static const struct numpy_case {\n\tconst char *name;\n"
          "\tsize_t len;\n\tconst char *bytes;\n} numpy_cases[] = {")
    for name, dtype, shape, fortran in CASES:
        if name == "v2_many_fields":
            continue  # built in the test itself, too long to paste
        hdr, _ = header(dtype, shape, fortran)
        print('\t{ "%s", %d,\n\t  %s },' % (name, len(hdr), c_string(hdr)))
    print("};")


if __name__ == "__main__":
    if sys.argv[1:] == ["--c"]:
        write_c()
    else:
        write_corpus(sys.argv[1] if len(sys.argv) > 1
                     else "tests/fuzz/corpus/fuzz_npy_header")
