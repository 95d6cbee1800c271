#!/usr/bin/python3
"""make_zip_corpus.py - zip archives for fuzzing the central-directory reader.

  scripts/make_zip_corpus.py [DIR]     write the seed corpus for
                                       tests/fuzz/fuzz_zip_index (default
                                       tests/fuzz/corpus/fuzz_zip_index)

Real npz files (np.savez, np.savez_compressed, empty, zip64, mixed members,
a data descriptor) and hostile ones made from them: truncated at various
points, overlapping members, offsets and sizes past the end, huge entry
counts, a bad zip64 locator, name lengths past the end, duplicate names, a
zip bomb.  All small; output is deterministic.
"""
import io
import os
import struct
import sys
import warnings
import zipfile

import numpy as np

warnings.simplefilter("ignore")

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz",
    "corpus", "fuzz_zip_index")
OUT = os.path.normpath(OUT)

ARRAYS = dict(a=np.arange(6, dtype="<i8"), b=np.eye(3, dtype="<f4"),
              s=np.array(["xy", "z"]))


def npz(fn, **arrays):
    f = io.BytesIO()
    fn(f, **arrays)
    return bytearray(f.getvalue())


def npy(arr):
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


def eocd_of(b):
    return b.rindex(b"PK\x05\x06")


def central_entries(b):
    """Offsets of the central directory entries (from the EOCD, or zip64)."""
    e = eocd_of(b)
    n, size, off = struct.unpack("<HII", b[e + 10:e + 20])
    if off == 0xffffffff or n == 0xffff:
        loc = e - 20
        rec = struct.unpack("<Q", b[loc + 8:loc + 16])[0]
        n, size, off = struct.unpack("<QQQ", b[rec + 32:rec + 56])
    out, p = [], off
    for _ in range(n):
        out.append(p)
        nl, xl, cl = struct.unpack("<HHH", b[p + 28:p + 34])
        p += 46 + nl + xl + cl
    return out


def local_of(b, k):
    return struct.unpack("<I", b[central_entries(b)[k] + 42:][:4])[0]


def put(b, off, fmt, *vals):
    b = bytearray(b)
    struct.pack_into(fmt, b, off, *vals)
    return b


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}

    # ---- real archives
    s = npz(np.savez, **ARRAYS)
    c = npz(np.savez_compressed, **ARRAYS)
    seeds["savez.npz"] = s
    seeds["savez_compressed.npz"] = c
    seeds["empty.npz"] = npz(np.savez)
    seeds["one_member.npz"] = npz(np.savez, x=np.float64(1.5))
    seeds["object.npz"] = npz(np.savez, o=np.array([1, "a"], dtype=object))

    f = io.BytesIO()
    saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 10, 1
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in ARRAYS.items():
            with z.open(k + ".npy", "w", force_zip64=True) as w:
                w.write(npy(v))
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved
    z64 = bytearray(f.getvalue())
    seeds["zip64.npz"] = z64

    f = io.BytesIO()
    with zipfile.ZipFile(f, "w") as z:
        for k in range(40):
            z.writestr("m%02d.npy" % k, npy(np.int8(k)))
    seeds["many.npz"] = f.getvalue()

    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.npy", npy(np.arange(50)))
        z.writestr(zipfile.ZipInfo("dir/"), b"")
        z.writestr("dir/notes.txt", b"hello " * 50,
                   compress_type=zipfile.ZIP_STORED)
        z.writestr("dir/b.npy", npy(np.ones((2, 2))))
    seeds["mixed.npz"] = f.getvalue()

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.buf = bytearray()

        def writable(self):
            return True

        def write(self, d):
            self.buf += d
            return len(d)

    u = Unseekable()
    with zipfile.ZipFile(u, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("dd.npy", "w") as w:
            w.write(npy(np.arange(20)))
    seeds["data_descriptor.npz"] = bytes(u.buf)

    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.npy", b"\0" * (4 << 20))
    seeds["bomb.npz"] = f.getvalue()

    # ---- truncated
    for cut in (4, 30, 60, len(s) // 2, len(s) - 23, len(s) - 1):
        seeds["trunc_%d.npz" % cut] = s[:cut]
    seeds["trunc_c_half.npz"] = c[:len(c) // 2]
    seeds["trunc_z64_tail.npz"] = z64[:len(z64) - 30]

    cd = central_entries(s)
    e = eocd_of(s)
    cd_size, cd_off = struct.unpack("<II", s[e + 12:e + 20])

    # ---- overlapping members: second central entry points at the first
    seeds["overlap_same_local.npz"] = put(s, cd[1] + 42, "<I", local_of(s, 0))
    # a member whose data covers the next local header
    seeds["overlap_grow.npz"] = put(s, cd[0] + 20, "<II",
                                    *[struct.unpack("<I", s[cd[0] + 20:cd[0] + 24])[0] + 40] * 2)
    # a central entry repeated (duplicate name, same data)
    first = s[cd[0]:cd[1]]
    dup = s[:cd_off + cd_size] + first + s[e:]
    dup = put(dup, len(dup) - 22 + 8, "<HHI", 4, 4, cd_size + len(first))
    seeds["duplicate_entry.npz"] = dup
    # duplicate name, different data
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("a.npy", npy(np.arange(3)))
        z.writestr("a.npy", npy(np.arange(4)))
    seeds["duplicate_name.npz"] = f.getvalue()

    # ---- offsets and sizes
    seeds["local_past_end.npz"] = put(s, cd[1] + 42, "<I", len(s) + 100)
    seeds["local_near_end.npz"] = put(s, cd[2] + 42, "<I", len(s) - 10)
    seeds["local_in_cd.npz"] = put(s, cd[2] + 42, "<I", cd_off)
    seeds["comp_size_huge.npz"] = put(c, central_entries(c)[0] + 20, "<I",
                                      0xfffffffe)
    seeds["size_huge_deflated.npz"] = put(c, central_entries(c)[1] + 24, "<I",
                                          0xfffffffe)
    seeds["size_small_deflated.npz"] = put(c, central_entries(c)[1] + 24, "<I", 5)
    seeds["size_zero_deflated.npz"] = put(c, central_entries(c)[1] + 24, "<I", 0)
    zc = central_entries(z64)
    # zip64 extra of the central entry: sizes 2^62
    nl = struct.unpack("<H", z64[zc[0] + 28:zc[0] + 30])[0]
    x = zc[0] + 46 + nl
    if z64[x:x + 2] == b"\x01\x00":
        seeds["zip64_extra_huge.npz"] = put(z64, x + 4, "<QQ", 1 << 62, 1 << 62)
        seeds["zip64_extra_short.npz"] = put(z64, x + 2, "<H", 4)
    loc = local_of(s, 1)
    seeds["local_extra_huge.npz"] = put(s, loc + 28, "<H", 0xffff)
    seeds["local_name_len_huge.npz"] = put(s, loc + 26, "<H", 0xffff)
    seeds["local_bad_sig.npz"] = put(s, loc, "<I", 0x04034b51)
    seeds["local_bad_name.npz"] = put(s, loc + 30, "<B", ord("q"))
    seeds["local_bad_crc.npz"] = put(s, loc + 14, "<I", 0x12345678)
    seeds["local_method.npz"] = put(s, loc + 8, "<H", 8)
    seeds["method_12.npz"] = put(put(s, loc + 8, "<H", 12), cd[1] + 10, "<H", 12)
    seeds["encrypted.npz"] = put(put(s, loc + 6, "<H", 1), cd[1] + 8, "<H", 1)
    flip = bytearray(s)
    flip[loc + 30 + 5 + 20 + 130] ^= 1
    seeds["flipped_data.npz"] = flip
    cflip = bytearray(c)
    cl = local_of(c, 1)
    cflip[cl + 80] ^= 0x55
    seeds["flipped_deflate.npz"] = cflip

    # ---- central directory
    seeds["cd_name_len_past_end.npz"] = put(s, cd[2] + 28, "<H", 0xffff)
    seeds["cd_extra_len_past_end.npz"] = put(s, cd[2] + 30, "<H", 0x8000)
    seeds["cd_bad_sig.npz"] = put(s, cd[1], "<I", 0x02014b51)
    seeds["cd_off_past_end.npz"] = put(s, e + 16, "<I", len(s) + 5)
    seeds["cd_size_past_end.npz"] = put(s, e + 12, "<I", 0x7fffffff)
    seeds["count_huge.npz"] = put(s, e + 8, "<HH", 0xffff, 0xffff)
    seeds["count_zero.npz"] = put(s, e + 8, "<HH", 0, 0)
    seeds["count_more.npz"] = put(s, e + 8, "<HH", 4, 4)
    seeds["multi_disk.npz"] = put(s, e + 4, "<HH", 1, 1)
    seeds["comment_past_end.npz"] = put(s, e + 20, "<H", 50)
    seeds["comment.npz"] = put(s + b"hello", e + 20, "<H", 5)
    seeds["prefixed.npz"] = b"#!junk\n" + s

    ze = eocd_of(z64)
    locator = ze - 20
    rec = struct.unpack("<Q", z64[locator + 8:locator + 16])[0]
    seeds["zip64_loc_past_end.npz"] = put(z64, locator + 8, "<Q", 1 << 40)
    seeds["zip64_loc_to_zero.npz"] = put(z64, locator + 8, "<Q", 0)
    seeds["zip64_rec_bad_sig.npz"] = put(z64, rec, "<I", 0x06064b51)
    seeds["zip64_count_huge.npz"] = put(z64, rec + 24, "<QQ", 1 << 63, 1 << 63)
    seeds["zip64_cd_off_huge.npz"] = put(z64, rec + 48, "<Q", (1 << 64) - 8)
    seeds["zip64_cd_size_huge.npz"] = put(z64, rec + 40, "<Q", (1 << 63) + 46)

    for name in sorted(seeds):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes(seeds[name]))
    print("%d seeds, %d bytes in %s" % (len(seeds),
          sum(len(v) for v in seeds.values()), OUT))


if __name__ == "__main__":
    main()
