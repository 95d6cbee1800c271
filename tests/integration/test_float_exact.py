"""The float parsers are exact: text_to_double() and text_to_float() (the
text view's float64 and float32 readers) against oracles that do not trust
C: Python's float() (correctly rounded) for float64, and exact rational
rounding (fractions.Fraction, ties to even) for float32.

numpy.float32(str) is not an oracle: it goes through a double and so rounds
twice ("1.00000005960464477539062500001" gives 1.0, the nearest float is
1.0000001); it is used only where the double is not a float32 midpoint.

build/float_oracle (tests/oracle/float_oracle.c) prints the bits of both
parsers for each line of its input; about 1.5 M strings, random and
adversarial, in one run of a few seconds.
"""
import os
import random
import struct
import sys
import subprocess
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from conftest import BIN

sys.set_int_max_str_digits(0)   # the 5000-digit tokens below

ORACLE = os.path.join(os.path.dirname(BIN), "float_oracle")
OK, BAD, SPECIAL = 0, 1, 2


def run_oracle(tokens):
    """[(r64, bits64, r32, bits32)] of the parsers for each token."""
    if not os.access(ORACLE, os.X_OK):
        pytest.fail("no %s (make builds it)" % ORACLE)
    data = ("\n".join(tokens) + "\n").encode()
    p = subprocess.run([ORACLE], input=data, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b"ERROR: AddressSanitizer" not in p.stderr and b"runtime error" not in p.stderr, \
        p.stderr.decode(errors="replace")
    lines = p.stdout.split(b"\n")[:-1]
    assert len(lines) == len(tokens)
    r64 = np.array([int(x[0:1]) for x in lines], dtype=np.int8)
    b64 = np.array([int(x[2:18], 16) for x in lines], dtype=np.uint64)
    r32 = np.array([int(x[19:20]) for x in lines], dtype=np.int8)
    b32 = np.array([int(x[21:29], 16) for x in lines], dtype=np.uint32)
    return r64, b64, r32, b32


def f64_bits(tokens):
    return np.array([float(t) for t in tokens], dtype=np.float64).view(np.uint64)


def f32_exact(tok):
    """The float32 nearest to the decimal tok (ties to even), as bits."""
    neg = tok.lstrip().startswith("-")
    x = abs(Fraction(tok))
    sign = 0x80000000 if neg else 0
    if x == 0:
        return sign
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1                                  # 2^e <= x < 2^(e+1)
    q = Fraction(2) ** (max(e, -126) - 23)      # the spacing of floats there
    m, rem = divmod(x / q, 1)
    m = int(m)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m & 1):
        m += 1
    if e < -126:                                # subnormal (m <= 2^23)
        return sign | m
    if m == 1 << 24:
        m, e = 1 << 23, e + 1
    if e > 127:
        return sign | 0x7f800000
    return sign | (e + 127) << 23 | (m - (1 << 23))


def f32_from_double(tokens):
    """float32 bits through the double, and a mask of the tokens whose
    double is exactly between two floats (there the double rounds twice)."""
    d = np.array([float(t) for t in tokens], dtype=np.float64)
    with np.errstate(over="ignore"):
        f = d.astype(np.float32)
        g = np.nextafter(f, np.where(d > f, np.float32(np.inf), np.float32(-np.inf)))
    fd, gd = f.astype(np.float64), g.astype(np.float64)
    with np.errstate(invalid="ignore"):
        mid = (fd != d) & np.isfinite(fd) & np.isfinite(gd) & (np.abs(d - fd) == np.abs(gd - d))
    return f.view(np.uint32), mid


def check(tokens, exact32=False, what=""):
    r64, b64, r32, b32 = run_oracle(tokens)
    bad = np.nonzero(r64 != OK)[0]
    assert not len(bad), "%s: not read as float64: %r" % (what, [tokens[i] for i in bad[:5]])
    bad = np.nonzero(r32 != OK)[0]
    assert not len(bad), "%s: not read as float32: %r" % (what, [tokens[i] for i in bad[:5]])
    want = f64_bits(tokens)
    bad = np.nonzero(b64 != want)[0]
    assert not len(bad), "%s: float64 differs: %s" % (what, [
        (tokens[i][:60], hex(int(b64[i])), hex(int(want[i]))) for i in bad[:5]])
    if exact32:
        want32 = np.array([f32_exact(t) for t in tokens], dtype=np.uint32)
    else:
        want32, mid = f32_from_double(tokens)
        for i in np.nonzero(mid)[0]:
            want32[i] = f32_exact(tokens[i])
    bad = np.nonzero(b32 != want32)[0]
    assert not len(bad), "%s: float32 differs: %s" % (what, [
        (tokens[i][:60], hex(int(b32[i])), hex(int(want32[i]))) for i in bad[:5]])


def test_rendered_values_read_back():
    """The text view's form of a double (shortest round trip, as Python's
    repr), of every kind of double: 1 M values, float64 and float32."""
    rng = np.random.default_rng(13)
    bits = rng.integers(0, 1 << 64, size=300_000, dtype=np.uint64)
    x = bits.view(np.float64)
    x = x[np.isfinite(x)]
    parts = [
        x,
        rng.standard_normal(300_000),
        np.round(rng.standard_normal(200_000), 3),
        rng.uniform(-1e6, 1e6, 100_000),
        # subnormals and the smallest normals
        (rng.integers(1, 1 << 53, size=50_000, dtype=np.uint64)).view(np.float64),
        rng.standard_normal(50_000) * 1e-310,
        rng.standard_normal(50_000) * 1e300,
    ]
    tokens = [repr(v) for p in parts for v in p.tolist()]
    check(tokens, what="repr of doubles")


def test_float32_shortest_forms_read_back():
    """numpy's shortest float32 forms read back to the same float32."""
    rng = np.random.default_rng(14)
    b = rng.integers(0, 1 << 32, size=100_000, dtype=np.uint64).astype(np.uint32)
    f = b.view(np.float32)
    f = f[np.isfinite(f)]
    tokens = [np.format_float_scientific(v, unique=True) for v in f]
    r64, b64, r32, b32 = run_oracle(tokens)
    assert (r32 == OK).all()
    bad = np.nonzero(b32 != f.view(np.uint32))[0]
    assert not len(bad), [(tokens[i], hex(int(b32[i]))) for i in bad[:5]]


def halfway_tokens(rng, n, bits32):
    """Exact decimals of the midpoints between adjacent floats (float64, or
    float32 when bits32), and the same nudged by one unit in the 40th digit."""
    getcontext().prec = 1200
    out = []
    for _ in range(n):
        if bits32:
            b = int(rng.integers(0, 0x7f7fffff))
            lo = np.array([b], dtype=np.uint32).view(np.float32)[0]
            hi = np.nextafter(lo, np.float32(np.inf))
            mid = (Decimal(float(lo)) + Decimal(float(hi))) / 2
        else:
            b = int(rng.integers(0, 0x7fefffffffffffff))
            lo = struct.unpack("<d", struct.pack("<Q", b))[0]
            hi = np.nextafter(lo, np.inf)
            mid = (Decimal(lo) + Decimal(float(hi))) / 2
        s = format(mid, "e")
        out.append(s)
        mant, exp = s.split("e")
        digits = mant.replace(".", "")
        if len(digits) < 40:
            digits += "0" * (40 - len(digits))
        for k in (1, -1):
            d = int(digits) + k
            ds = str(d)
            out.append("%s.%se%d" % (ds[0], ds[1:], int(exp) + len(ds) - len(digits)))
    return out


def test_adversarial():
    """Halfway cases, subnormals, long mantissas, extreme exponents,
    leading zeros, signed zeros; float32 checked by exact rounding."""
    rng = np.random.default_rng(15)
    pyr = random.Random(15)
    toks = []
    toks += halfway_tokens(rng, 3000, False)
    toks += halfway_tokens(rng, 3000, True)
    # Powers of two and their neighbours at full precision.
    for e in list(range(-1074, 1024, 7)) + list(range(-149, 128)):
        v = 2.0 ** e
        toks += ["%.40e" % v, "%.17e" % v, repr(v), "%.25e" % np.nextafter(v, 0)]
    # Long mantissas: 19, 20, 21, 25, 40, 100 and 800 digits.
    for nd in (19, 20, 21, 25, 40, 100, 800):
        for _ in range(800 if nd < 100 else 100):
            digits = "".join(pyr.choice("0123456789") for _ in range(nd)).lstrip("0") or "1"
            ex = pyr.randint(-360, 330)
            toks.append("%s.%se%d" % (digits[0], digits[1:], ex))
            toks.append("0.%se%d" % (digits, ex))
            toks.append("%se%d" % (digits, ex - len(digits)))
    # Runs of nines and zeros (carries into the next power of two).
    for nd in range(1, 26):
        for ex in range(-330, 310, 13):
            toks.append("9" * nd + "e%d" % ex)
            toks.append("1" + "0" * nd + "1e%d" % ex)
            toks.append("4" + "9" * nd + "e%d" % ex)
    # Extreme exponents, zeros, leading and trailing zeros, signs.
    toks += ["1e-400", "-1e-400", "1e308", "1.7976931348623157e308",
             "1.7976931348623158e308", "1.797693134862315807e308", "-0", "+0", "0", "-0.0",
             "0e999", "0e-999", "-0e+00000", "2.2250738585072011e-308",
             "2.2250738585072012e-308", "2.2250738585072014e-308", "4.9406564584124654e-324",
             "2.4703282292062327e-324", "2.4703282292062328e-324", "2.47032822920623272e-324",
             "7.4109846876186982e-324", "1e-323", "3e-324", "1.401298464324817e-45",
             "7.006492321624085e-46", "7.006492321624086e-46", "3.4028235677973366e38",
             "3.4028234663852886e38", "1.1754943508222875e-38", "1.1754942e-38",
             "0." + "0" * 330 + "1234", "000000000000000000000000000012.5",
             "0.000000000000000000000000000000000000000000000000000001e50",
             "1" + "0" * 400 + "e-400", "123456789012345678901234567890e-30",
             "1.2500000000000000000000000000000000000", "+.5", "5.", "-.0e-5",
             "1e+0308", "1E-5", "1e00000000000000000000000000000000000000000005",
             "4.35679806e-311", "9007199254740993", "9007199254740992.5",
             "9007199254740993.0000000000000000000000001", "18446744073709551615",
             "18446744073709551616", "18446744073709551617e-20",
             "1" + "0" * 5000 + "e-5000", "0." + "0" * 5000 + "1e5001",
             "1" + "0" * 200001 + "e-200001", "0." + "0" * 200000 + "7e200001"]
    # Random decimals of every length and scale, with leading zeros.
    for _ in range(20000):
        nd = pyr.randint(1, 30)
        digits = "".join(pyr.choice("0123456789") for _ in range(nd))
        lz = "0" * pyr.choice((0, 0, 0, 1, 5, 30))
        point = pyr.randint(0, nd)
        s = lz + digits[:point] + "." + digits[point:] if point < nd else lz + digits
        if pyr.random() < 0.7:
            s += "e%d" % pyr.randint(-345, 330)
        toks.append(pyr.choice(("", "-", "+")) + s)
    # Out of float32's range (inf) is not what this checks: drop those.
    toks = [t for t in toks if abs(Fraction(t)) < Fraction("3.4028235677973366e38")]
    check(toks, exact32=True, what="adversarial")


def test_out_of_range_and_bad_tokens():
    """Overflow gives inf (refused by the text view, as numpy would), bad
    tokens are bad, nan/inf are specials."""
    toks = ["1e400", "-1.8e308", "1e39", "3.5e38", "nan", "-inf", "Infinity",
            "1e", "e5", ".", "-", "1.2.3", "0x10", "1e+", "--1", "1_0"]
    r64, b64, r32, b32 = run_oracle(toks)
    inf64, inf32 = 0x7ff0000000000000, 0x7f800000
    got = [(int(r64[i]), int(b64[i]) & ~(1 << 63), int(r32[i]), int(b32[i]) & 0x7fffffff)
           for i in range(len(toks))]
    assert got[0] == (OK, inf64, OK, inf32)
    assert got[1] == (OK, inf64, OK, inf32)
    assert got[2][0:2] == (OK, int(f64_bits(["1e39"])[0])) and got[2][2:] == (OK, inf32)
    assert got[3][2:] == (OK, inf32)
    assert [g[0] for g in got[4:7]] == [SPECIAL] * 3
    assert [g[2] for g in got[4:7]] == [SPECIAL] * 3
    assert [g[0] for g in got[7:]] == [BAD] * 9, list(zip(toks[7:], got[7:]))
    assert [g[2] for g in got[7:]] == [BAD] * 9
