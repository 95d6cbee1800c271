#!/usr/bin/python3
"""Write the seed corpus of fuzz_text_parse: small text views of many dtypes
and layouts (as npzfs renders them), plus a few broken ones.

    /usr/bin/python3 scripts/make_text_corpus.py [OUTDIR]

OUTDIR defaults to tests/fuzz/corpus/fuzz_text_parse.  Needs numpy."""
import os
import sys

import numpy as np


def header(a):
    d = {'descr': np.lib.format.dtype_to_descr(a.dtype),
         'fortran_order': bool(a.flags.f_contiguous and not a.flags.c_contiguous),
         'shape': a.shape}
    return '# {' + ''.join("'%s': %r, " % (k, d[k]) for k in sorted(d)) + '}\n'


def esc_u(s):
    out = []
    for ch in s:
        c = ord(ch)
        if ch in '\\"':
            out.append('\\' + ch)
        elif ch in '\n\r\t':
            out.append({'\n': '\\n', '\r': '\\r', '\t': '\\t'}[ch])
        elif c < 0x20 or 0x7f <= c <= 0x9f:
            out.append('\\x%02x' % c)
        elif 0xd800 <= c <= 0xdfff or c in (0x2028, 0x2029):
            out.append('\\u%04x' % c)
        else:
            out.append(ch)
    return '"' + ''.join(out) + '"'


def esc_b(b):
    out = []
    for c in b.rstrip(b'\0'):
        if c in b'\\"':
            out.append('\\' + chr(c))
        elif c in b'\n\r\t':
            out.append({10: '\\n', 13: '\\r', 9: '\\t'}[c])
        elif c < 0x20 or c >= 0x7f:
            out.append('\\x%02x' % c)
        else:
            out.append(chr(c))
    return 'b"' + ''.join(out) + '"'


def fl(x):
    x = float(x)
    return 'nan' if x != x else repr(x)


def scalar(x, dt):
    k = dt.kind
    if k == 'b':
        return 'True' if x else 'False'
    if k in 'iu':
        return str(int(x))
    if k == 'f':
        if dt.itemsize == 8:
            return fl(x)
        s = np.format_float_positional(x, unique=True, trim='0') if np.isfinite(x) else fl(x)
        return s
    if k == 'c':
        re, im = scalar(x.real, np.dtype(dt.char.lower()) if False else np.dtype('f%d' % (dt.itemsize // 2))), \
            scalar(x.imag, np.dtype('f%d' % (dt.itemsize // 2)))
        return re + ('' if im.startswith('-') else '+') + im + 'j'
    if k == 'U':
        return esc_u(str(x))
    if k == 'S':
        return esc_b(bytes(x))
    if k == 'V':
        return '0x' + bytes(x).hex()
    if k == 'M':
        return str(np.datetime_as_string(x))
    if k == 'm':
        return 'NaT' if np.isnat(x) else str(int(x.astype(np.int64)))
    raise ValueError(dt)


def leaves(x, dt):
    if dt.names is None:
        if dt.subdtype:
            base, shape = dt.subdtype
            return [v for e in np.asarray(x).reshape(-1) for v in leaves(e, base)]
        return [scalar(x, dt)]
    return [v for n in dt.names for v in leaves(x[n], dt.fields[n][0])]


def columns(dt, prefix=''):
    out = []
    for n in dt.names:
        sub = dt.fields[n][0]
        base, shape = (sub.subdtype if sub.subdtype else (sub, ()))
        names = [prefix + n]
        if shape:
            names = [prefix + n + '[' + ','.join(map(str, i)) + ']' for i in np.ndindex(*shape)]
        for nm in names:
            out += columns(base, nm + '.') if base.names else [nm]
    return out


def view(a):
    t = header(a)
    if a.dtype.names:
        t += '# columns: ' + ' '.join(columns(a.dtype)) + '\n'
        for r in np.ascontiguousarray(a).reshape(-1):
            t += ' '.join(leaves(r, a.dtype)) + '\n'
        return t
    c = np.ascontiguousarray(a)
    if c.ndim <= 1:
        return t + ''.join(scalar(x, a.dtype) + '\n' for x in c.reshape(-1))
    if c.ndim == 2:
        return t + ''.join(' '.join(scalar(x, a.dtype) for x in row) + '\n' for row in c)
    blocks = []
    for idx in np.ndindex(*c.shape[:-2]):
        b = '# [' + ', '.join(map(str, idx)) + ', :, :]\n'
        b += ''.join(' '.join(scalar(x, a.dtype) for x in row) + '\n' for row in c[idx])
        blocks.append(b)
    return t + '\n'.join(blocks)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/fuzz/corpus/fuzz_text_parse'
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        'f8_2d': np.array([[1.5, -0.0, np.nan], [np.inf, 1e-05, 1e16]]),
        'f8_0d': np.array(3.25),
        'f8_empty': np.zeros((0, 3)),
        'f4_1d': np.array([0.1, 3.4028235e38, 1e-45], np.float32),
        'f2_1d': np.array([0.1, 65504, 6e-08, -1], np.float16),
        'f16_1d': np.array([0.1, 1e-4000], np.longdouble),
        'i1': np.array([-128, 127, 0], np.int8),
        'u8_be': np.array([0, 2**64 - 1], '>u8'),
        'i8_3d': np.arange(24).reshape(2, 3, 4),
        'i2_4d_f': np.asfortranarray(np.arange(24, dtype='>i2').reshape(2, 3, 2, 2)),
        'b1': np.array([True, False]),
        'c16': np.array([1 + 2j, -0.0 - 1j, complex(np.nan, np.inf)]),
        'c8_be': np.array([1 - 1j], '>c8'),
        'U4': np.array(['a"b\n', 'é\u2028', '', 'x\x00y'], 'U4'),
        'S3': np.array([b'ab', b'\x00\xff', b'"\\'], 'S3'),
        'V3': np.frombuffer(b'\x00\xab\xff\x01\x02\x03', 'V3'),
        'M8_D': np.array(['2024-01-31', 'NaT', '-0001-12-31'], 'M8[D]'),
        'M8_ns': np.array(['2024-01-31T12:00:00.000000001', 'NaT'], 'M8[ns]'),
        'M8_10s': np.array([5, -7], 'M8[10s]'),
        'M8_Y': np.array([54, 8031], 'M8[Y]'),
        'm8_ms': np.array([5, -3, np.timedelta64('NaT')], 'm8[ms]'),
        'rec': np.array([(1, (2.5, 3), [1.0, 2.0], b'ab', 'x')],
                        [('a', '<i4'), ('n', [('x', '>f4'), ('y', 'u1')]),
                         ('pos', '<f8', (2,)), ('s', 'S3'), ('u', 'U2')]),
        'rec_pad': np.zeros(2, np.dtype({'names': ['a', 'b'], 'formats': ['u1', '<i8'],
                                         'offsets': [0, 8], 'itemsize': 24})),
        'rec_sub_rec': np.zeros(1, [('s', [('p', 'u1'), ('q', 'i2')], (2,)), ('m', 'i1', (2, 2))]),
        'f8_rand': rng.standard_normal((4, 5)),
    }
    for name, a in arrays.items():
        with open(os.path.join(out, name + '.txt'), 'w', encoding='utf-8') as f:
            f.write(view(a))
    extra = {
        'infer_int.txt': '1\n2\n3\n',
        'infer_words.txt': 'abc 1\n"d e" 2\n',
        'infer_complex.txt': '1+2j 3\n-infj nan\n',
        'infer_blocks.txt': '1 2\n3 4\n\n5 6\n7 8\n',
        'infer_bytes.txt': 'b"ab" b"\\x00"\n',
        'ragged.txt': "# {'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n1 2\n3\n",
        'bad_escape.txt': "# {'descr': '<U3', 'fortran_order': False, 'shape': (1,), }\n\"a\\q\"\n",
        'bad_header.txt': "# {'descr': '<f8', 'shape': (1,), }\n1\n",
        'crlf.txt': "# {'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\r\n1\r\n2\r\n",
    }
    for name, text in extra.items():
        with open(os.path.join(out, name), 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main()
