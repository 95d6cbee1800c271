"""The PNG codec against the real readers: PNGs that src/image renders are
read by Pillow pixel for pixel equal to the numpy arrays (heatmaps equal to
the documented scale computed by numpy), and PNGs that Pillow saves (L,
RGB, RGBA, I;16, palette, RGBA of an RGB image) parse into the exact
arrays.  Drives the unit-test binary's file mode (`test_png render|parse
DIR NAME...`), given by PNG_TOOL (default build/test_png); `make unit` runs
it.  Needs numpy and Pillow (python3-numpy, python3-pil)."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

TOOL = os.environ.get('PNG_TOOL', os.path.join(
    os.path.dirname(__file__), '..', '..', 'build', 'test_png'))

rng = np.random.default_rng(20261203)


def tool(mode, d, names):
    r = subprocess.run([TOOL, mode, str(d)] + list(names),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def exact_arrays():
    a = {}
    a['gray8'] = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    a['gray8_f'] = np.asfortranarray(rng.integers(0, 256, (41, 29), dtype=np.uint8))
    a['gray16_le'] = rng.integers(0, 65536, (17, 23), dtype='<u2')
    a['gray16_be'] = rng.integers(0, 65536, (17, 23)).astype('>u2')
    a['gray16_f'] = np.asfortranarray(rng.integers(0, 65536, (9, 31), dtype='<u2'))
    a['rgb'] = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    a['rgb_f'] = np.asfortranarray(rng.integers(0, 256, (19, 7, 3), dtype=np.uint8))
    a['rgba'] = rng.integers(0, 256, (12, 40, 4), dtype=np.uint8)
    a['rgba_f'] = np.asfortranarray(rng.integers(0, 256, (33, 5, 4), dtype=np.uint8))
    a['one'] = np.array([[7]], dtype=np.uint8)
    a['wide'] = rng.integers(0, 256, (1, 5000), dtype=np.uint8)
    a['tall'] = rng.integers(0, 256, (5000, 1, 3), dtype=np.uint8)
    return a


def heat_oracle(x):
    """The documented scale, with the same floating-point steps."""
    x = np.asarray(x, dtype=np.float64)
    fin = np.isfinite(x)
    out = np.zeros(x.shape, dtype=np.uint8)
    if fin.any():
        lo, hi = x[fin].min(), x[fin].max()
        if hi > lo:
            k = 255.0 / (hi - lo)
            t = np.floor((x[fin] - lo) * k + 0.5)
            out[fin] = np.clip(t, 0, 255).astype(np.uint8)
    out[x == np.inf] = 255
    return out


def test_pillow_reads_exact_views(tmp_path):
    arrays = exact_arrays()
    for name, a in arrays.items():
        np.save(tmp_path / (name + '.npy'), a)
    tool('render', tmp_path, arrays)
    for name, a in arrays.items():
        with Image.open(tmp_path / (name + '.png')) as im:
            im.load()
            want_mode = {1: 'L', 3: 'RGB', 4: 'RGBA'}[1 if a.ndim == 2 else a.shape[2]]
            if a.dtype.itemsize == 2:
                assert im.mode in ('I', 'I;16', 'I;16B'), (name, im.mode)
            else:
                assert im.mode == want_mode, (name, im.mode)
            got = np.asarray(im)
        assert got.shape == a.shape, name
        assert np.array_equal(got.astype(np.int64), a.astype(np.int64)), name


def test_pillow_reads_heatmaps(tmp_path):
    x = rng.standard_normal((45, 61))
    x[3, 4] = np.nan
    x[5, 6] = np.inf
    x[7, 8] = -np.inf
    cases = {
        'f8': x,
        'f8_f': np.asfortranarray(x),
        'f4_be': x.astype('>f4'),
        'i8': rng.integers(-2**62, 2**62, (20, 30)),
        'i2': rng.integers(-30000, 30000, (20, 30)).astype(np.int16),
        'u4': rng.integers(0, 2**32, (11, 13)).astype(np.uint32),
        'b1': rng.integers(0, 2, (9, 10)).astype(bool),
        'f2': rng.standard_normal((16, 8)).astype(np.float16),
        'i1_rgbshape': rng.integers(-128, 128, (4, 4)).astype(np.int8),
        'const': np.full((5, 7), 3.5),
        'nan': np.full((3, 3), np.nan),
        'ld': rng.standard_normal((6, 9)).astype(np.longdouble),
    }
    for name, a in cases.items():
        np.save(tmp_path / (name + '.npy'), a)
    tool('render', tmp_path, cases)
    for name, a in cases.items():
        with Image.open(tmp_path / (name + '.png')) as im:
            im.load()
            assert im.mode == 'L', name
            got = np.asarray(im)
        want = heat_oracle(a.astype(np.float64))
        assert np.array_equal(got, want), name
        # monotonic in the values
        v = a.astype(np.float64).ravel()
        g = got.ravel()
        keep = ~np.isnan(v)
        order = np.argsort(v[keep], kind='stable')
        assert np.all(np.diff(g[keep][order].astype(int)) >= 0), name


def save(im, path, **kw):
    im.save(path, format='PNG', **kw)


def test_pillow_saved_pngs_parse(tmp_path):
    bases, want = {}, {}
    g = rng.integers(0, 256, (31, 17), dtype=np.uint8)
    bases['L'] = g
    save(Image.fromarray(g, 'L'), tmp_path / 'L.png')
    bases['L_f'] = np.asfortranarray(g)
    save(Image.fromarray(g, 'L'), tmp_path / 'L_f.png', optimize=True)
    rgb = rng.integers(0, 256, (13, 22, 3), dtype=np.uint8)
    bases['RGB'] = rgb
    save(Image.fromarray(rgb, 'RGB'), tmp_path / 'RGB.png')
    rgba = rng.integers(0, 256, (9, 14, 4), dtype=np.uint8)
    bases['RGBA'] = rgba
    save(Image.fromarray(rgba, 'RGBA'), tmp_path / 'RGBA.png')
    u16 = rng.integers(0, 65536, (10, 12), dtype=np.uint16)
    for order in '<>':
        name = 'I16' + ('le' if order == '<' else 'be')
        bases[name] = u16.astype(order + 'u2')
        save(Image.fromarray(u16, 'I;16'), tmp_path / (name + '.png'))
    # an RGB image with few colours saved as a palette PNG; and as RGBA
    few = rng.integers(0, 4, (8, 9)) * 60
    prgb = np.stack([few, 255 - few, few // 2], axis=-1).astype(np.uint8)
    bases['P'] = prgb
    pim = Image.fromarray(prgb, 'RGB').convert(
        'P', palette=Image.Palette.ADAPTIVE, colors=16)
    assert np.array_equal(np.asarray(pim.convert('RGB')), prgb)
    save(pim, tmp_path / 'P.png')
    bases['RGB_as_RGBA'] = rgb
    save(Image.fromarray(rgb, 'RGB').convert('RGBA'), tmp_path / 'RGB_as_RGBA.png')
    # a gray array edited in RGB mode (still gray)
    bases['L_as_RGB'] = g
    save(Image.fromarray(g, 'L').convert('RGB'), tmp_path / 'L_as_RGB.png')
    for name, a in bases.items():
        np.save(tmp_path / (name + '.npy'), a)
        want[name] = a
    with Image.open(tmp_path / 'P.png') as im:
        assert im.mode == 'P'
    tool('parse', tmp_path, bases)
    for name, a in want.items():
        out = np.load(tmp_path / (name + '.out.npy'))
        assert out.dtype == a.dtype and out.shape == a.shape, name
        assert out.flags.f_contiguous == a.flags.f_contiguous, name
        assert np.array_equal(out, a), name
        raw = open(tmp_path / (name + '.out.npy'), 'rb').read()
        assert raw.endswith(a.tobytes(order='F' if np.isfortran(a) else 'C')), name


def test_pillow_edit_refused(tmp_path):
    """A coloured edit of a gray image, and a translucent one of an RGB
    image, are refused (the tool exits 1 naming the pixel)."""
    g = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    np.save(tmp_path / 'g.npy', g)
    im = Image.fromarray(g, 'L').convert('RGB')
    im.putpixel((2, 4), (1, 2, 3))
    save(im, tmp_path / 'g.png')
    r = subprocess.run([TOOL, 'parse', str(tmp_path), 'g'], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert 'pixel (row 4, column 2) is not gray (1, 2, 3)' in r.stdout
    assert not (tmp_path / 'g.out.npy').exists()
