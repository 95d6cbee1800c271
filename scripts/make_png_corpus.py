#!/usr/bin/python3
"""Write the seed corpus of fuzz_png: small PNGs of every colour type and
bit depth the PNG view reads (gray 1/2/4/8/16, gray+alpha, RGB, RGBA,
palette with and without tRNS, gray with a tRNS key), interlaced and not,
written here with zlib alone (an encoder independent of libpng), plus a
truncated one and one with a bad CRC.

    /usr/bin/python3 scripts/make_png_corpus.py [OUTDIR]

OUTDIR defaults to tests/fuzz/corpus/fuzz_png."""
import os
import random
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data)))


def pack_row(samples, depth):
    """Samples of one row to bytes (sub-byte depths packed MSB first)."""
    if depth == 16:
        return b''.join(struct.pack('>H', s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = acc << depth | s
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def png(w, h, depth, ctype, interlace=False, plte=None, trns=None, seed=0):
    rnd = random.Random(seed)
    ch = CHANNELS[ctype]
    top = (1 << depth) - 1 if ctype != 3 else len(plte) - 1
    pix = [[[rnd.randint(0, top) for _ in range(ch)] for _ in range(w)]
           for _ in range(h)]
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        for y in range(y0, h, dy):
            row = [s for x in range(x0, w, dx) for s in pix[y][x]]
            if row:
                raw += b'\0' + pack_row(row, depth)
    out = b'\x89PNG\r\n\x1a\n'
    out += chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0,
                                      1 if interlace else 0))
    if plte:
        out += chunk(b'PLTE', b''.join(bytes(c) for c in plte))
    if trns is not None:
        out += chunk(b'tRNS', trns)
    out += chunk(b'IDAT', zlib.compress(bytes(raw)))
    out += chunk(b'IEND', b'')
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else 'tests/fuzz/corpus/fuzz_png'
    os.makedirs(outdir, exist_ok=True)
    pal = [(10, 20, 30), (200, 0, 0), (7, 7, 7), (0, 255, 0)]
    gpal = [(0, 0, 0), (90, 90, 90), (255, 255, 255)]
    cases = {
        'gray8': png(4, 3, 8, 0),
        'gray8_interlaced': png(9, 7, 8, 0, True),
        'gray16': png(5, 2, 16, 0),
        'gray16_interlaced': png(3, 5, 16, 0, True, seed=1),
        'gray1': png(11, 3, 1, 0),
        'gray2': png(6, 2, 2, 0),
        'gray4': png(5, 5, 4, 0, True),
        'gray_trns': png(4, 2, 8, 0, trns=struct.pack('>H', 7)),
        'gray_alpha': png(3, 3, 8, 4),
        'rgb8': png(4, 3, 8, 2),
        'rgb8_interlaced': png(10, 9, 8, 2, True),
        'rgb16': png(2, 2, 16, 2),
        'rgba8': png(3, 4, 8, 6),
        'rgba8_interlaced': png(8, 8, 8, 6, True),
        'palette2': png(7, 3, 2, 3, plte=pal),
        'palette_trns': png(4, 4, 8, 3, plte=pal, trns=b'\xff\x80'),
        'palette_gray': png(5, 2, 4, 3, True, plte=gpal),
        'one_pixel': png(1, 1, 8, 2),
    }
    good = cases['gray8']
    cases['truncated'] = good[:len(good) - 20]
    bad = bytearray(good)
    bad[-20] ^= 0x40
    cases['bad_crc'] = bytes(bad)
    for name, data in cases.items():
        with open(os.path.join(outdir, name + '.png'), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
