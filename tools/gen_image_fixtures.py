#!/usr/bin/python3
"""Generates the image module's fixtures in tests/data/images (run with Debian's python3,
which has PIL and numpy; Pillow is the reference):

  resize/in_*.png            deterministic RGB inputs for the resampling test
  resize/<in>_<filter>_WxH.png  what Pillow's Image.resize(size, filter) yields for them
  orient_<o>.jpg             a 48x32 block pattern stored transformed, with EXIF Orientation=o,
                             so that PIL's ImageOps.exif_transpose() makes every one upright
  orient_upright.png         the upright pattern itself
  meta_full.jpg              a small JPEG carrying every EXIF field photo_meta reads
                             (GPS south/west, below sea level, offset time, lens model)
  cmyk_synthetic.jpg         a CMYK JPEG written by PIL (Adobe-inverted)
  expected/<file>.png        PIL's Image.open(file).convert("RGB") of copied real fixtures

Usage: /usr/bin/python3 tools/gen_image_fixtures.py [repo root]
"""
import os
import sys

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "data", "images")

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}

# (input name, output sizes): shrink by non-integer factors, enlarge, 1-pixel edges.
RESIZE_CASES = {
    "in_61x47": [(23, 17), (40, 47), (61, 30), (150, 101), (1, 1), (61, 1), (1, 47), (7, 100)],
    "in_200x150": [(112, 84), (37, 29), (224, 168)],
    "in_1x1": [(5, 3)],
    "in_3x2": [(1, 1), (9, 7)],
}


def make_input(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.float64)
    img[..., 0] = 255.0 * x / max(w - 1, 1)
    img[..., 1] = 255.0 * y / max(h - 1, 1)
    img[..., 2] = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0)
    img += rng.normal(0, 25, img.shape)
    # hard edges and saturated blocks exercise clipping of the negative lobes
    img[h // 3: h // 2, :, :] = 255
    img[:, w // 4: w // 4 + max(1, w // 10), 1] = 0
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def gen_resize():
    d = os.path.join(OUT, "resize")
    os.makedirs(d, exist_ok=True)
    for i, (name, sizes) in enumerate(RESIZE_CASES.items()):
        w, h = (int(v) for v in name[3:].split("x"))
        src = make_input(w, h, 1234 + i)
        src.save(os.path.join(d, name + ".png"))
        for fname, f in FILTERS.items():
            for (ow, oh) in sizes:
                out = src.resize((ow, oh), f)
                out.save(os.path.join(d, "%s_%s_%dx%d.png" % (name, fname, ow, oh)))


def gen_orientation():
    # 48x32 upright pattern of 8x8 blocks with distinct colours: no two quadrants alike
    a = np.zeros((32, 48, 3), dtype=np.uint8)
    for by in range(4):
        for bx in range(6):
            a[by * 8:(by + 1) * 8, bx * 8:(bx + 1) * 8] = (bx * 45 + 10, by * 70 + 20,
                                                           (bx + by) * 25 + 5)
    upright = Image.fromarray(a, "RGB")
    upright.save(os.path.join(OUT, "orient_upright.png"))
    # stored = inverse of what exif_transpose applies
    inverse = {1: None, 2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
               5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}
    for o, op in inverse.items():
        stored = upright if op is None else upright.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = o
        path = os.path.join(OUT, "orient_%d.jpg" % o)
        stored.save(path, quality=95, subsampling=0, exif=exif.tobytes())
        back = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        diff = np.abs(np.asarray(back, dtype=int) - a.astype(int)).max()
        assert back.size == upright.size and diff < 16, (o, back.size, diff)


def gen_meta():
    R = TiffImagePlugin.IFDRational
    exif = Image.Exif()
    exif[0x010F] = "TestMake"        # Make
    exif[0x0110] = "Test Model 1  "  # Model, trailing spaces to trim
    exif[0x0131] = "shoebox gen"     # Software
    exif[0x0112] = 6                 # Orientation
    exif[0x0132] = "2020:01:02 03:04:05"  # DateTime (fallback, not used)
    e = {}
    e[0x9003] = "2021:07:14 23:45:56"     # DateTimeOriginal
    e[0x9011] = "-05:30"                  # OffsetTimeOriginal
    e[0x9291] = "123"                     # SubSecTimeOriginal
    e[0x829A] = R(1, 250)                 # ExposureTime
    e[0x829D] = R(28, 10)                 # FNumber
    e[0x8827] = 800                       # ISO
    e[0x920A] = R(42, 10)                 # FocalLength
    e[0xA405] = 26                        # FocalLengthIn35mmFilm
    e[0xA434] = "Test Lens 4.2mm f/2.8"   # LensModel
    e[0xA002] = 16                        # PixelXDimension
    e[0xA003] = 8                         # PixelYDimension
    g = {}
    g[1] = "S"
    g[2] = (R(33, 1), R(51, 1), R(3540, 100))
    g[3] = "W"
    g[4] = (R(70, 1), R(40, 1), R(0, 1))
    g[5] = b"\x01"                        # below sea level
    g[6] = R(125, 10)
    exif[0x8769] = e
    exif[0x8825] = g
    Image.new("RGB", (16, 8), (200, 100, 50)).save(os.path.join(OUT, "meta_full.jpg"),
                                                   exif=exif.tobytes())
    # out-of-range values must be rejected: latitude 213 degrees, a 0000:00:00 date
    bad = Image.Exif()
    bad[0x010F] = "BadMake"
    bad[0x8769] = {0x9003: "0000:00:00 00:00:00"}
    bad[0x8825] = {1: "N", 2: (R(213, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))}
    Image.new("RGB", (8, 8), (0, 0, 0)).save(os.path.join(OUT, "meta_bad_gps.jpg"),
                                             exif=bad.tobytes())


def gen_cmyk():
    a = np.zeros((24, 32, 4), dtype=np.uint8)
    a[:, :16, 0] = 200
    a[:12, :, 1] = 150
    a[:, 8:24, 2] = 90
    a[18:, :, 3] = 60
    Image.fromarray(a, "CMYK").save(os.path.join(OUT, "cmyk_synthetic.jpg"), quality=95)


# real fixtures copied into tests/data/images whose PIL decode is the reference
EXPECTED = ["cmyk_adobe.jpg", "cmyk_synthetic.jpg", "pngsuite_basn2c16_rgb16.png",
            "pngsuite_basn3p04_palette4.png", "pngsuite_basn4a08_gray_alpha.png",
            "pngsuite_basn6a16_rgba16.png", "pngsuite_ibasn2c08_interlaced_rgb8.png",
            "lossy_vp8_hopper.webp", "transparent.gif", "rgba16bit_lzw_bigendian.tiff",
            "progressive_puppies.jpg"]


def gen_expected():
    d = os.path.join(OUT, "expected")
    os.makedirs(d, exist_ok=True)
    for f in EXPECTED:
        src = os.path.join(OUT, f)
        if not os.path.exists(src):
            print("skip (not copied):", f)
            continue
        Image.open(src).convert("RGB").save(os.path.join(d, f + ".png"))


if __name__ == "__main__":
    gen_resize()
    gen_orientation()
    gen_meta()
    gen_cmyk()
    gen_expected()
