"""npyref.py - the Python-side reference for what an npzfs mount must show.

Everything here is derived from the archive itself (zipfile) and numpy, never
from npzfs: the expected file tree of a mount, the expected text view of an
array (SPEC.md "The text view"), the expected extended attributes, and a
parser that reads text-view tokens back into element bytes.
"""
import ast
import io
import time
import warnings
import zipfile

import numpy as np

NPY_MAGIC = b"\x93NUMPY"


# --------------------------------------------------------------------------
# .npy headers

def npy_header(data):
    """(dict_text, header_len) of .npy bytes: the header dictionary exactly as
    written (without padding and newline) and the offset of the array data."""
    assert data[:6] == NPY_MAGIC, data[:16]
    major = data[6]
    if major == 1:
        hlen = int.from_bytes(data[8:10], "little")
        start = 10
    else:
        hlen = int.from_bytes(data[8:12], "little")
        start = 12
    enc = "utf-8" if major >= 3 else "latin-1"
    text = data[start:start + hlen].decode(enc)
    return text.rstrip(" \n"), start + hlen


def descr_text(dict_text):
    """The user.npzfs.dtype value: the descr as written, without the quotes
    of a plain type string ("<f8"), the list text for structured dtypes."""
    descr = ast.literal_eval(dict_text)["descr"]
    return descr if isinstance(descr, str) else repr(descr)


def shape_text(dict_text):
    return repr(tuple(ast.literal_eval(dict_text)["shape"]))


def load(data):
    """The array in .npy bytes (object arrays too)."""
    return np.load(io.BytesIO(data), allow_pickle=True)


# --------------------------------------------------------------------------
# Elements

def _sci_parts(x):
    """Shortest round-trip digits and decimal exponent of a finite float
    scalar in its own precision: 0.00123 -> ('123', -3, False)."""
    s = np.format_float_scientific(x, unique=True, trim="-", exp_digits=1)
    mant, exp = s.split("e")
    neg = mant.startswith("-")
    digits = mant.lstrip("-").replace(".", "")
    return digits, int(exp), neg


def fmt_float(x):
    """Python-repr style: positional unless exponent < -4 or >= 16."""
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    digits, exp, neg = _sci_parts(x)
    sign = "-" if neg else ""
    if digits.strip("0") == "":
        return sign + "0.0"
    if exp < -4 or exp >= 16:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % (sign, mant, "-" if exp < 0 else "+", abs(exp))
    if exp >= 0:
        if len(digits) <= exp + 1:
            return sign + digits + "0" * (exp + 1 - len(digits)) + ".0"
        return sign + digits[:exp + 1] + "." + digits[exp + 1:]
    return sign + "0." + "0" * (-exp - 1) + digits


def fmt_complex(z):
    re, im = z.real, z.imag
    neg = bool(np.signbit(im)) and not np.isnan(im)
    return fmt_float(re) + ("-" if neg else "+") + fmt_float(abs(im)) + "j"


_U_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def fmt_str(s):
    return '"' + "".join(_U_ESC.get(c, c) for c in s) + '"'


def fmt_bytes(b):
    out = []
    for c in b:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return 'b"' + "".join(out) + '"'


def _int64_like(dt):
    """int64 with dt's byte order (the storage of datetime64/timedelta64)."""
    return np.dtype(dt.byteorder.replace("|", "=") + "i8")


def fmt_scalar(dt, raw):
    """Token for one element of the (non-structured) dtype dt stored in raw."""
    x = np.frombuffer(raw, dtype=dt)[0]
    k = dt.kind
    if k == "b":
        return "True" if x else "False"
    if k in "iu":
        return str(int(x))
    if k == "f":
        return fmt_float(x)
    if k == "c":
        return fmt_complex(x)
    if k == "U":
        return fmt_str(str(x))
    if k == "S":
        return fmt_bytes(bytes(x))
    if k == "V":
        return "0x" + bytes(raw).hex()
    if k == "M":
        return str(np.datetime_as_string(x))
    if k == "m":
        return str(int(np.frombuffer(raw, dtype=_int64_like(dt))[0]))
    raise AssertionError("no text for dtype %r" % (dt,))


def columns(dt, prefix=""):
    """[(column name, base dtype, byte offset in the record)] of a structured
    dtype, flattened as in the '# columns:' line: nested 'n.x', subarray
    'pos[0]', 2-d subarray 'm[0,1]'."""
    cols = []
    for name in dt.names:
        fdt, off = dt.fields[name][:2]
        full = prefix + name
        if fdt.subdtype is not None:
            base, shape = fdt.subdtype
            assert base.names is None, "subarrays of records are not covered"
            for i, idx in enumerate(np.ndindex(*shape)):
                cols.append(("%s[%s]" % (full, ",".join(map(str, idx))),
                             base, off + i * base.itemsize))
        elif fdt.names is not None:
            cols.extend((n, b, off + o) for n, b, o in columns(fdt, full + "."))
        else:
            cols.append((full, fdt, off))
    return cols


def element_tokens(arr):
    """Yield, per element (record) in C order, the list of
    (token, base dtype, raw element bytes) of its columns."""
    dt = arr.dtype
    raw = np.ascontiguousarray(arr).tobytes()
    size = dt.itemsize
    cols = columns(dt) if dt.names is not None else [(None, dt, 0)]
    for i in range(arr.size):
        rec = raw[i * size:(i + 1) * size]
        yield [(fmt_scalar(b, rec[o:o + b.itemsize]), b, rec[o:o + b.itemsize])
               for _, b, o in cols]


def render(arr, dict_text):
    """The exact expected text view of arr, whose .npy header dict is
    dict_text."""
    out = ["# " + dict_text + "\n"]
    if arr.dtype.names is not None:
        out.append("# columns: " + " ".join(n for n, _, _ in columns(arr.dtype)) + "\n")
        for toks in element_tokens(arr):
            out.append(" ".join(t for t, _, _ in toks) + "\n")
        return "".join(out)
    toks = [t[0][0] for t in element_tokens(arr)]
    if arr.ndim <= 1:
        out.extend(t + "\n" for t in toks)
        return "".join(out)
    ncol = arr.shape[-1]
    nrow = arr.shape[-2]

    def rows(start):
        return "".join(" ".join(toks[start + r * ncol:start + (r + 1) * ncol]) + "\n"
                       for r in range(nrow))

    if arr.ndim == 2:
        out.append(rows(0))
        return "".join(out)
    blocks = []
    per_block = nrow * ncol
    for b, idx in enumerate(np.ndindex(*arr.shape[:-2])):
        blocks.append("# [%s, :, :]\n" % ", ".join(map(str, idx)) + rows(b * per_block))
    out.append("\n".join(blocks))
    return "".join(out)


# --------------------------------------------------------------------------
# Reading a text view back

def tokenize(line):
    """Split a body line at spaces outside double-quoted strings."""
    toks = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        j = i
        if line.startswith('b"', j):
            j += 1
        if j < n and line[j] == '"':
            j += 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            j += 1
        else:
            while j < n and line[j] != " ":
                j += 1
        toks.append(line[i:j])
        i = j
    return toks


def _parse_float(tok, dt):
    if dt.itemsize <= 8:
        return np.array(float(tok), dtype=dt)
    with warnings.catch_warnings():     # numpy warns on the largest long double
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array(np.longdouble(tok), dtype=dt)


def parse_token(tok, dt):
    """Bytes of one element of dtype dt read back from its token."""
    k = dt.kind
    if k == "b":
        assert tok in ("True", "False"), tok
        val = np.array(tok == "True", dtype=dt)
    elif k in "iu":
        val = np.array(int(tok), dtype=dt)
    elif k == "f":
        val = _parse_float(tok, dt)
    elif k == "c":
        assert tok.endswith("j"), tok
        body = tok[:-1]
        k_split = max(i for i in range(1, len(body))
                      if body[i] in "+-" and body[i - 1] not in "eE")
        part = np.dtype(dt.byteorder.replace("|", "=") + "f%d" % (dt.itemsize // 2))
        re = _parse_float(body[:k_split], part)
        im = _parse_float(body[k_split:], part)
        return re.tobytes() + im.tobytes()
    elif k == "U":
        val = np.array(ast.literal_eval(tok), dtype=dt)
    elif k == "S":
        assert tok.startswith('b"'), tok
        val = np.array(ast.literal_eval(tok), dtype=dt)
    elif k == "V":
        assert tok.startswith("0x"), tok
        return bytes.fromhex(tok[2:])
    elif k == "M":
        val = np.array(np.datetime64(tok), dtype=dt) if tok != "NaT" else np.array("NaT", dtype=dt)
    elif k == "m":
        val = np.array(int(tok), dtype=_int64_like(dt))
    else:
        raise AssertionError(dt)
    return val.tobytes()


def same_element(dt, a, b):
    """Element bytes equal (x87 long doubles: the 10 significant bytes)."""
    if dt.kind == "f" and dt.itemsize > 8:
        return a[:10] == b[:10]
    if dt.kind == "c" and dt.itemsize > 16:
        h = dt.itemsize // 2
        return a[:10] == b[:10] and a[h:h + 10] == b[h:h + 10]
    return a == b


def body_tokens(text):
    """Tokens of the body lines of a text view, comments and blanks skipped."""
    out = []
    for line in text.split("\n"):
        if line == "" or line.startswith("#"):
            continue
        out.append(tokenize(line))
    return out


# --------------------------------------------------------------------------
# The expected tree of a mount

def dos_mtime(info):
    return time.mktime(tuple(info.date_time) + (0, 0, -1))


class Entry:
    """One expected file of a mount."""

    def __init__(self, info, kind):
        self.info = info          # zipfile.ZipInfo of the member
        self.kind = kind          # "member" or "view"


def expected_tree(archive):
    """(files, dirs): files maps a mount-relative path to an Entry, dirs is
    the set of mount-relative directory paths ('' is the root)."""
    files, dirs = {}, {""}
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        names = {i.filename for i in infos}
        for info in infos:
            name = info.filename
            parts = name.rstrip("/").split("/")
            for k in range(1, len(parts)):
                dirs.add("/".join(parts[:k]))
            if name.endswith("/"):
                dirs.add(name.rstrip("/"))
                continue
            files[name] = Entry(info, "member")
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                continue
            view = name[:-4] + ".txt"
            if view in names:
                continue
            data = z.read(name)
            try:
                arr = load(data)
            except Exception:
                continue
            if not arr.dtype.hasobject:
                files[view] = Entry(info, "view")
    return files, dirs


def expected_content(z, entry):
    """Exact bytes of an expected file, z an open ZipFile of its archive."""
    data = z.read(entry.info.filename)
    if entry.kind == "member":
        return data
    dict_text, _ = npy_header(data)
    return render(load(data), dict_text).encode("utf-8")
