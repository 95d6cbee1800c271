"""sozip.py - a SOZip writer for the tests (seek-optimized zip, spec 0.5).

A SOZip member is deflated with a full flush every `chunk` bytes of input
(so each chunk inflates on its own) and followed by a hidden index: a local
header that no central entry lists, named "DIR/.BASE.sozip.idx", holding a
32-byte header (version 1, skip_bytes, chunk_size, offset_size, uncompressed
size, compressed size) and the compressed offset of every chunk but the
first.  Ordinary readers (numpy, zipfile, unzip) see a deflated member.

`write_zip(path, members)` writes a zip32 archive of `Member`s;
`npz_to_sozip(src, dst, names)` rewrites a numpy .npz with the chosen
members as SOZip.  `tamper` hooks let tests damage an index (with or
without a correct CRC).
"""
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

SIG_LOCAL = 0x04034B50
SIG_CENTRAL = 0x02014B50
SIG_EOCD = 0x06054B50
SIG_DESCRIPTOR = 0x08074B50
DOS_TIME, DOS_DATE = 0x6000, 0x5821        # 2024-01-01 12:00


def sozip_deflate(data, chunk, level=6):
    """(compressed bytes, offsets of chunks 1..n-1) of data, deflated raw
    with a full flush after every `chunk` bytes of input and Z_FINISH after
    the last chunk."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out, offsets, done = [], [], 0
    view = memoryview(data)
    for pos in range(0, len(data), chunk):
        if pos:
            offsets.append(done)
        piece = view[pos:pos + chunk]
        last = pos + chunk >= len(data)
        b = c.compress(piece) + c.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
        out.append(b)
        done += len(b)
    if not data:
        out.append(c.flush())
    return b"".join(out), offsets


def index_data(size, comp_size, chunk, offsets, offset_size=8, skip=0):
    """The hidden index file's content."""
    head = struct.pack("<IIIIQQ", 1, skip, chunk, offset_size, size, comp_size)
    fmt = "<I" if offset_size == 4 else "<Q"
    return head + bytes(skip) + b"".join(struct.pack(fmt, o) for o in offsets)


def index_name(name):
    d, _, base = name.rpartition("/")
    return (d + "/" if d else "") + "." + base + ".sozip.idx"


@dataclass
class Member:
    name: str
    data: bytes
    method: str = "deflated"        # "stored", "deflated" or "sozip"
    chunk: int = 32 << 10
    level: int = 6
    offset_size: int = 8
    descriptor: bool = False        # flag bit 3 and a data descriptor
    # damage the index: tamper(index bytes) -> index bytes; fix_crc: the
    # hidden header's CRC is computed after tampering (else before)
    tamper: Optional[Callable[[bytes], bytes]] = None
    fix_crc: bool = True
    layout: dict = field(default_factory=dict)   # filled by write_zip


def _local(name, method, crc, comp, size, flags=0):
    nb = name.encode()
    return struct.pack("<IHHHHHIIIHH", SIG_LOCAL, 20, flags, method, DOS_TIME,
                       DOS_DATE, crc, comp, size, len(nb), 0) + nb


def write_zip(path, members):
    """Write members (a list of Member) as a zip32 archive at path; every
    member's .layout gets lh_off, data_off, comp_size and, for SOZip ones,
    idx_off (the hidden local header), idx_data_off, idx_len.  Returns path."""
    body, central, off = [], [], 0
    for m in members:
        crc = zlib.crc32(m.data)
        flags = 8 if m.descriptor else 0
        if m.method == "stored":
            comp, method = bytes(m.data), 0
        elif m.method == "deflated":
            c = zlib.compressobj(m.level, zlib.DEFLATED, -15)
            comp, method = c.compress(m.data) + c.flush(), 8
        else:
            comp, offsets = sozip_deflate(m.data, m.chunk, m.level)
            method = 8
        if m.descriptor:
            local = _local(m.name, method, 0, 0, 0, flags)
        else:
            local = _local(m.name, method, crc, len(comp), len(m.data))
        m.layout.update(lh_off=off, data_off=off + len(local), comp_size=len(comp))
        rec = local + comp
        if m.descriptor:
            rec += struct.pack("<IIII", SIG_DESCRIPTOR, crc, len(comp), len(m.data))
        if m.method == "sozip":
            idx = index_data(len(m.data), len(comp), m.chunk, offsets, m.offset_size)
            icrc = zlib.crc32(idx)
            if m.tamper:
                idx = m.tamper(idx)
                if m.fix_crc:
                    icrc = zlib.crc32(idx)
            ilocal = _local(index_name(m.name), 0, icrc, len(idx), len(idx))
            m.layout.update(idx_off=off + len(rec), idx_data_off=off + len(rec) + len(ilocal),
                            idx_len=len(idx))
            rec += ilocal + idx
        nb = m.name.encode()
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", SIG_CENTRAL, 0x314, 20, flags,
                                   method, DOS_TIME, DOS_DATE, crc, len(comp),
                                   len(m.data), len(nb), 0, 0, 0, 0, 0o100644 << 16, off)
                       + nb)
        body.append(rec)
        off += len(rec)
    cd = b"".join(central)
    eocd = struct.pack("<IHHHHIIH", SIG_EOCD, 0, 0, len(members), len(members),
                       len(cd), off, 0)
    with open(path, "wb") as f:
        f.write(b"".join(body) + cd + eocd)
    return path


def npz_to_sozip(src, dst, names=None, chunk=32 << 10, level=6, **member_kw):
    """Rewrite the .npz at src into dst with members `names` (member names,
    "x.npy"; None: every member) as SOZip; the others keep their method.
    member_kw (tamper=..., descriptor=...) apply to the SOZip members.
    Returns {name: Member}."""
    members = []
    with zipfile.ZipFile(src) as z:
        for info in z.infolist():
            data = z.read(info)
            if names is None or info.filename in names:
                members.append(Member(info.filename, data, "sozip", chunk, level,
                                      **member_kw))
            else:
                method = "stored" if info.compress_type == zipfile.ZIP_STORED else "deflated"
                members.append(Member(info.filename, data, method))
    write_zip(dst, members)
    return {m.name: m for m in members}


def hidden_index_at(path, member):
    """The hidden index record right after `member`'s data in the zip file
    at path (found through zipfile's offsets): (name, index bytes), or None."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        h = f.read(30)
        nlen, xlen = struct.unpack("<HH", h[26:30])
        pos = info.header_offset + 30 + nlen + xlen + info.compress_size
        if info.flag_bits & 8:
            f.seek(pos)
            pos += 16 if struct.unpack("<I", f.read(4))[0] == SIG_DESCRIPTOR else 12
        f.seek(pos)
        h = f.read(30)
        if len(h) < 30 or struct.unpack("<I", h[:4])[0] != SIG_LOCAL:
            return None
        method, crc, comp, size, nlen, xlen = struct.unpack("<HxxxxIIIHH", h[8:30])
        name = f.read(nlen).decode()
        f.read(xlen)
        data = f.read(comp)
        if method != 0 or zlib.crc32(data) != crc:
            return None
        return name, data
