"""Writes the seed corpus of tests/fuzz/fuzz_image.c: tiny valid PNGs and JPEGs of each kind.

    /usr/bin/python3 tests/fuzz/image_seeds.py [DIR]     (default tests/fuzz/seeds/image)

PNGs are written here byte by byte (zlib for IDAT), so that every colour type and bit depth,
tRNS, Adam7 interlacing (with passes left empty by a small image), all five row filters, IDAT
split in two, ancillary chunks and trailing zero bytes are covered. JPEGs come from PIL (RGB at
4:2:0, 4:2:2 and 4:4:4, grayscale, Adobe CMYK, progressive, optimized Huffman tables) and from
libturbojpeg through ctypes (YCCK, 4:4:0, 4:1:1, progressive 4:2:0). The files are committed;
run this again only to change them. Pixels come from a fixed seed, so the output is the same
every time.
"""
import ctypes
import io
import os
import random
import struct
import sys
import zlib

from PIL import Image

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds", "image")
rng = random.Random(7)

# ---------------------------------------------------------------------------------------------
# PNG

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]  # (x0, y0, dx, dy) of each pass


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pack_row(pixels, bits):
    """A row of pixels (tuples of samples) as bytes at `bits` per sample."""
    samples = [s for p in pixels for s in p]
    if bits == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if bits == 8:
        return bytes(samples)
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = (acc << bits) | s
        n += bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_rows(rows, bpp):
    """Each row prefixed with its filter type, the types taken in turn (0 None .. 4 Paeth)."""
    out, prev = bytearray(), None
    for i, row in enumerate(rows):
        ftype = i % 5
        up = prev if prev is not None else bytes(len(row))
        f = bytearray()
        for x, v in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b, c = up[x], (up[x - bpp] if x >= bpp else 0)
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
            f.append((v - pred) & 0xFF)
        out += bytes([ftype]) + f
        prev = row
    return bytes(out)


def png(w, h, ctype, bits, pixels, interlace=False, pre=(), trns=None, plte=None,
        split_idat=False, post=b""):
    """PNG bytes of pixels (pixels[y][x] a tuple of samples)."""
    ch = CHANNELS[ctype]
    bpp = max(1, ch * bits // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = [[pixels[y][x] for x in range(x0, w, dx)] for y in range(y0, h, dy)]
            sub = [r for r in sub if r]
            raw += filter_rows([pack_row(r, bits) for r in sub], bpp)
    else:
        raw = filter_rows([pack_row(r, bits) for r in pixels], bpp)
    z = zlib.compress(raw, 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, ctype, 0, 0,
                                                                interlace))
    for kind, body in pre:
        data += chunk(kind, body)
    if plte is not None:
        data += chunk(b"PLTE", bytes(c for rgb in plte for c in rgb))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    if split_idat:
        data += chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:])
    else:
        data += chunk(b"IDAT", z)
    return data + chunk(b"IEND", b"") + post


def image(w, h, ch, maxval):
    """Smooth ramps plus a little noise, ch samples per pixel in 0..maxval."""
    return [[tuple(min(maxval, (x * maxval // max(1, w - 1) + y * maxval // max(1, h - 1)
                                + c * maxval // 3) % (maxval + 1) ^ rng.randrange(2))
                   for c in range(ch)) for x in range(w)] for y in range(h)]


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def pngs():
    for bits in (1, 2, 4, 8, 16):
        write(f"gray{bits}.png", png(5, 3, 0, bits, image(5, 3, 1, (1 << bits) - 1)))
    write("gray8_trns.png", png(4, 4, 0, 8, image(4, 4, 1, 255), trns=struct.pack(">H", 17)))
    write("gray16_trns.png", png(4, 2, 0, 16, image(4, 2, 1, 65535),
                                 trns=struct.pack(">H", 1000)))
    write("graya8.png", png(4, 3, 4, 8, image(4, 3, 2, 255)))
    write("graya16.png", png(3, 2, 4, 16, image(3, 2, 2, 65535)))
    write("rgb8.png", png(6, 5, 2, 8, image(6, 5, 3, 255)))
    write("rgb16.png", png(3, 3, 2, 16, image(3, 3, 3, 65535)))
    write("rgb8_trns.png", png(4, 2, 2, 8, image(4, 2, 3, 255), trns=struct.pack(">HHH", 1, 2, 3)))
    write("rgba8.png", png(4, 3, 6, 8, image(4, 3, 4, 255)))
    write("rgba16.png", png(2, 2, 6, 16, image(2, 2, 4, 65535)))
    for bits in (1, 2, 4, 8):
        n = 1 << bits if bits < 8 else 20
        plte = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
        pix = [[(rng.randrange(n),) for _ in range(5)] for _ in range(3)]
        write(f"pal{bits}_trns.png", png(5, 3, 3, bits, pix, plte=plte,
                                         trns=bytes(rng.randrange(256) for _ in range(n // 2 + 1))))
    write("rgb8_adam7.png", png(9, 9, 2, 8, image(9, 9, 3, 255), interlace=True))
    plte = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    write("pal2_adam7_small.png", png(3, 2, 3, 2, [[(x + y & 3,) for x in range(3)]
                                                   for y in range(2)], interlace=True, plte=plte))
    write("gray16_adam7.png", png(5, 6, 0, 16, image(5, 6, 1, 65535), interlace=True))
    write("rgb8_chunks.png", png(7, 4, 2, 8, image(7, 4, 3, 255), split_idat=True,
                                 pre=[(b"gAMA", struct.pack(">I", 45455)),
                                      (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
                                      (b"tEXt", b"Comment\0seed")], post=b"\0\0\0"))


# ---------------------------------------------------------------------------------------------
# JPEG

def pil_image(mode, w, h):
    ch = len(Image.new(mode, (1, 1)).getbands())
    px = image(w, h, ch, 255)
    data = bytes(s for row in px for p in row for s in p)
    return Image.frombytes(mode, (w, h), data)


def pil_jpeg(name, mode, w, h, **kw):
    buf = io.BytesIO()
    pil_image(mode, w, h).save(buf, "JPEG", quality=kw.pop("quality", 90), **kw)
    write(name, buf.getvalue())


def tj_jpeg(name, pf, ch, w, h, sub, flags=0):
    """libturbojpeg's tjCompress2 (pixel format pf with ch bytes a pixel, subsampling sub)."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int,
                               ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    handle = tj.tjInitCompress()
    px = bytes(s for row in image(w, h, ch, 255) for p in row for s in p)
    buf, size = ctypes.c_void_p(), ctypes.c_ulong()
    if tj.tjCompress2(handle, px, w, w * ch, h, pf, ctypes.byref(buf), ctypes.byref(size), sub,
                      90, flags):
        sys.exit(f"{name}: tjCompress2 failed")
    write(name, ctypes.string_at(buf, size.value))
    tj.tjFree(buf)
    tj.tjDestroy(handle)


def jpegs():
    pil_jpeg("rgb420.jpg", "RGB", 17, 9, subsampling=2)
    pil_jpeg("rgb422.jpg", "RGB", 16, 8, subsampling=1)
    pil_jpeg("rgb444.jpg", "RGB", 9, 7, subsampling=0)
    pil_jpeg("gray.jpg", "L", 11, 6)
    pil_jpeg("cmyk.jpg", "CMYK", 8, 8)
    pil_jpeg("rgb420_progressive.jpg", "RGB", 16, 16, subsampling=2, progressive=True)
    pil_jpeg("gray_progressive.jpg", "L", 10, 10, progressive=True)
    pil_jpeg("rgb420_optimized.jpg", "RGB", 12, 12, subsampling=2, optimize=True, quality=75)
    tj_pf_rgb, tj_pf_cmyk = 0, 11
    tj_jpeg("ycck.jpg", tj_pf_cmyk, 4, 8, 8, 0)
    tj_jpeg("rgb440.jpg", tj_pf_rgb, 3, 8, 16, 4)
    tj_jpeg("rgb411.jpg", tj_pf_rgb, 3, 32, 8, 5)
    tj_jpeg("rgb420_progressive_tj.jpg", tj_pf_rgb, 3, 16, 16, 2, flags=16384)


os.makedirs(OUT, exist_ok=True)
pngs()
jpegs()
