"""test_check.py - `npzfs --check ARCHIVE` (SPEC.md "Command line"): sound
archives pass with exit status 0 and a summary line; every kind of damage is
named, one line per problem, with exit status 1.  No mount is made."""
import io
import struct
import zipfile

import numpy as np
import pytest

from conftest import sanitizer_report, run_npzfs


def check(path):
    """Run npzfs --check: (exit status, stdout lines)."""
    res = run_npzfs("--check", path, timeout=120)
    err = res.stderr.decode(errors="replace")
    assert not sanitizer_report(err), err
    return res.returncode, res.stdout.decode(errors="replace").splitlines()


def npy_bytes(arr):
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


def data_offset(raw, info):
    h = info.header_offset
    n, e = struct.unpack("<HH", raw[h + 26:h + 30])
    return h + 30 + n + e


def patched(src, dst, member, fn):
    """Copy src to dst after fn(bytearray, ZipInfo of member)."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        fn(raw, z.getinfo(member))
    dst.write_bytes(bytes(raw))
    return dst


ARRAYS = dict(params=np.arange(1000, dtype=np.float64), grid=np.eye(7),
              small=np.int8(3), text=np.array(["a", "bc"]))


@pytest.mark.parametrize("kind", ["savez", "savez_compressed", "empty",
                                  "object", "mixed"])
def test_sound_archives(tmp_path, kind):
    p = tmp_path / "a.npz"
    if kind == "savez":
        np.savez(p, **ARRAYS)
    elif kind == "savez_compressed":
        np.savez_compressed(p, **ARRAYS)
    elif kind == "empty":
        np.savez(p)
    elif kind == "object":
        np.savez(p, o=np.array([{"a": 1}, None], dtype=object), x=np.ones(3))
    else:
        np.savez(p, **ARRAYS)
        with zipfile.ZipFile(p, "a", zipfile.ZIP_DEFLATED) as z:
            z.writestr("notes.txt", b"hello\n" * 100)
            z.writestr("sub/", b"")
            z.writestr("sub/y.npy", npy_bytes(np.arange(5)))
    n = {"empty": 0, "object": 2, "mixed": 7}.get(kind, 4)
    rc, out = check(p)
    assert out == ["%s: %d member%s, 0 problems" % (p, n, "" if n == 1 else "s")]
    assert rc == 0


def test_zip64_many_members(tmp_path):
    """More than 65535 members: zip64 end of central directory."""
    p = tmp_path / "many.npz"
    blob = npy_bytes(np.arange(3))
    with zipfile.ZipFile(p, "w") as z:
        for k in range(66000):
            z.writestr("a%d.npy" % k, blob)
    rc, out = check(p)
    assert out == ["%s: 66000 members, 0 problems" % p]
    assert rc == 0


def test_zip64_forced(tmp_path, monkeypatch):
    """zip64 records in the central directory too, with few members."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    p = tmp_path / "z64.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in ARRAYS.items():
            with z.open(k + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, v)
    rc, out = check(p)
    assert out == ["%s: 4 members, 0 problems" % p]
    assert rc == 0


@pytest.mark.parametrize("how", ["savez", "savez_compressed"])
def test_flipped_data_byte(tmp_path, how):
    src = tmp_path / "good.npz"
    getattr(np, how)(src, **ARRAYS)

    def flip(raw, info):
        raw[data_offset(raw, info) + info.compress_size // 2] ^= 0x10

    p = patched(src, tmp_path / "bad.npz", "params.npy", flip)
    rc, out = check(p)
    assert rc == 1
    assert len(out) == 2
    assert out[0].startswith("params.npy: ")
    if how == "savez":
        assert "CRC mismatch (stored 0x" in out[0]
    assert out[1] == "%s: 4 members, 1 problem" % p


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npy_header_length_mismatch(tmp_path, method):
    """A shape that no longer matches the data (CRCs all correct)."""
    blob = npy_bytes(np.arange(10, dtype="<i8"))
    assert b"(10,)" in blob
    p = tmp_path / "hdr.npz"
    with zipfile.ZipFile(p, "w", method) as z:
        z.writestr("ok.npy", npy_bytes(np.ones(4)))
        z.writestr("params.npy", blob.replace(b"(10,)", b"(12,)"))
        z.writestr("garbage.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 42}  \n")
        z.writestr("short.npy", b"\x93NUM")
        z.writestr("readme.txt", b"not an array, not checked as one")
    rc, out = check(p)
    assert rc == 1
    assert len(out) == 4
    assert out[0].startswith("params.npy: npy header says 96 bytes of data")
    assert "(12,)" in out[0] and "the member has 80" in out[0]
    assert out[1].startswith("garbage.npy: npy header")
    assert out[2].startswith("short.npy: npy header")
    assert out[3] == "%s: 5 members, 3 problems" % p


def test_local_header_name_mismatch(tmp_path):
    src = tmp_path / "good.npz"
    np.savez(src, **ARRAYS)

    def rename(raw, info):
        raw[info.header_offset + 30] = ord("q")

    p = patched(src, tmp_path / "bad.npz", "grid.npy", rename)
    rc, out = check(p)
    assert rc == 1
    assert out[0] == ('grid.npy: local header name "qrid.npy" differs from '
                      "the central directory's")
    assert out[-1] == "%s: 4 members, 1 problem" % p


def test_local_header_crc_and_signature(tmp_path):
    src = tmp_path / "good.npz"
    np.savez_compressed(src, **ARRAYS)

    def crc(raw, info):
        raw[info.header_offset + 14] ^= 1

    def sig(raw, info):
        raw[info.header_offset + 1] = ord("X")

    p = patched(src, tmp_path / "crc.npz", "grid.npy", crc)
    rc, out = check(p)
    assert rc == 1 and "grid.npy: local header CRC 0x" in out[0]
    p = patched(src, tmp_path / "sig.npz", "small.npy", sig)
    rc, out = check(p)
    assert rc == 1 and out[0].startswith("small.npy: bad local header signature")


def test_overlapping_members(tmp_path):
    """Two central-directory entries for one local header."""
    src = tmp_path / "good.npz"
    np.savez(src, a=np.arange(3), b=np.arange(4))
    raw = src.read_bytes()
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack("<II", raw[eocd + 12:eocd + 20])
    first = raw[cd_off:cd_off + 46 + struct.unpack("<H", raw[cd_off + 28:cd_off + 30])[0]
                + sum(struct.unpack("<HH", raw[cd_off + 30:cd_off + 34]))]
    dup = first.replace(b"a.npy", b"c.npy")
    new_eocd = bytearray(raw[eocd:])
    struct.pack_into("<HHI", new_eocd, 8, 3, 3, cd_size + len(dup))
    p = tmp_path / "overlap.npz"
    p.write_bytes(raw[:cd_off + cd_size] + dup + bytes(new_eocd))
    rc, out = check(p)
    assert rc == 1
    assert "c.npy: overlaps member 0 (a.npy)" in out[-3] or \
        any(line.startswith("c.npy: overlaps member 0 (a.npy)") for line in out)
    assert out[-1] == "%s: 3 members, %d problems" % (p, len(out) - 1)


def test_data_into_central_directory(tmp_path):
    """The central directory claims sizes that run into itself."""
    src = tmp_path / "good.npz"
    np.savez(src, a=np.arange(3), b=np.arange(4))
    raw = bytearray(src.read_bytes())
    cd = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)   # b.npy
    assert raw[cd + 46:cd + 51] == b"b.npy"
    comp, size = struct.unpack("<II", raw[cd + 20:cd + 28])
    struct.pack_into("<II", raw, cd + 20, comp + 20, size + 20)
    p = tmp_path / "past.npz"
    p.write_bytes(bytes(raw))
    rc, out = check(p)
    assert rc == 1
    assert out[0].startswith("b.npy: data overlaps the central directory")
    assert out[1].startswith("b.npy: local header sizes")
    assert out[2] == "%s: 2 members, 2 problems" % p


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "missing",
                                  "directory", "damaged_cd"])
def test_unopenable(tmp_path, kind):
    p = tmp_path / "x.npz"
    np.savez(p, **ARRAYS)
    raw = p.read_bytes()
    if kind == "truncated":
        p.write_bytes(raw[:len(raw) // 2])
    elif kind == "random":
        p.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "missing":
        p.unlink()
    elif kind == "directory":
        p.unlink()
        p.mkdir()
    else:
        cd = raw.index(b"PK\x01\x02")
        p.write_bytes(raw[:cd] + b"XX" + raw[cd + 2:])
    rc, out = check(p)
    assert rc == 1
    assert len(out) == 1 and out[0].startswith("%s: " % p)
    why = out[0][len(str(p)) + 2:]
    assert why == {"truncated": "damaged archive: end of central directory "
                                "not found (truncated file?)",
                   "random": "not a zip archive",
                   "empty": "not a zip archive (empty file)",
                   "missing": "No such file or directory",
                   "directory": "Is a directory"}.get(kind, why)
    if kind == "damaged_cd":
        assert why.startswith("damaged archive")


def test_usage_and_help(tmp_path):
    res = run_npzfs("--check")
    assert res.returncode == 1 and b"npzfs --check ARCHIVE" in res.stderr
    res = run_npzfs("--check", tmp_path / "a", tmp_path / "b")
    assert res.returncode == 1
    res = run_npzfs("--help")
    assert res.returncode == 0 and b"--check ARCHIVE" in res.stdout


def test_names_escaped(tmp_path):
    p = tmp_path / "esc.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("evil\nx: fine.npy", b"\x93NUMPY broken")
    rc, out = check(p)
    assert rc == 1
    assert out[0].startswith("evil\\x0ax: fine.npy: npy header")
    assert len(out) == 2
    # a name quoted in a message is escaped too
    raw = bytearray(p.read_bytes())
    raw[30:30 + 4] = b"\n\n\\\x7f"
    p.write_bytes(bytes(raw))
    rc, out = check(p)
    assert rc == 1
    assert out[0] == ('evil\\x0ax: fine.npy: local header name '
                      '"\\x0a\\x0a\\x5c\\x7f\\x0ax: fine.npy" differs from the '
                      "central directory's")
    assert len(out) == 2
