"""The image decoders (runner/image.c) against PIL's Image.open(path).convert("RGB").

    image_pil.py IMAGE_DUMP DIR

Writes images into DIR with PIL (JPEG at quality 90: RGB at 4:2:0 and 4:4:4, progressive RGB,
grayscale L, CMYK; PNG: RGB, RGBA, LA, L, P with a tRNS transparency table, 1-bit, I;16 gray),
a YCCK JPEG through libturbojpeg (ctypes), and PNGs PIL cannot write, byte by byte with zlib
(16-bit RGB; 8-bit RGB interlaced with Adam7). Each goes through IMAGE_DUMP
(tests/image_dump.c), whose planar RGB bytes must equal PIL's pixels exactly: the JPEGs go
through the same libjpeg-turbo with the same settings (accurate DCT, smooth upsampling), and a
four-channel JPEG becomes RGB by PIL's own formula.

One case differs on purpose: PIL opens 16-bit gray as mode I and its convert("RGB") clips
the values to 255, so all but the darkest pixels come out white, while image.c takes the
high byte, as PIL itself does for 16-bit RGB and RGBA, as libpng's png_set_strip_16 does,
and as torchvision's decode_png does; for that case the reference is the high byte of PIL's
values (PIL's clipped pixels are reported beside it, not checked).

Prints the largest difference per case. Exits 1 on any difference or failure.
"""
import ctypes
import os
import random
import struct
import subprocess
import sys
import warnings
import zlib

from PIL import Image, JpegImagePlugin

# convert("RGB") of a palette image with a tRNS table suggests RGBA; RGB is what is compared.
warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)

DUMP, DIR = sys.argv[1], sys.argv[2]
W, H = 67, 45  # odd sizes: partial JPEG blocks, chroma planes rounded up
rng = random.Random(1234)


def photo(mode, w=W, h=H):
    """Smooth gradients plus noise, like a photograph, in a PIL mode of 8-bit bands."""
    ch = len(Image.new(mode, (1, 1)).getbands())
    data = bytearray()
    for y in range(h):
        for x in range(w):
            for c in range(ch):
                v = (x * 255 // (w - 1) * (c + 1) + y * 255 // (h - 1) * (3 - c)) // 3
                data.append(max(0, min(255, v + rng.randrange(-24, 25))))
    return Image.frombytes(mode, (w, h), bytes(data))


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(w, h, bits, ctype, rows, interlace=False):
    """A PNG of rows (each a list of pixels, a pixel a tuple of samples), filter 0 (None)."""
    def pack(row):
        return b"".join(struct.pack(">H" if bits == 16 else "B", s) for p in row for s in p)

    if interlace:  # Adam7: each pass's sub-image, row by row
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            for y in range(y0, h, dy):
                sub = rows[y][x0::dx]
                if sub:
                    raw += b"\0" + pack(sub)
    else:
        raw = b"".join(b"\0" + pack(r) for r in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, bits, ctype, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def write(name, data):
    path = os.path.join(DIR, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def ycck_jpeg(name):
    """A YCCK JPEG: libturbojpeg compresses CMYK pixels as YCCK, with Adobe's marker."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int,
                               ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    handle = tj.tjInitCompress()
    px = photo("CMYK").tobytes()
    buf, size = ctypes.c_void_p(), ctypes.c_ulong()
    tjpf_cmyk, tjsamp_420 = 11, 2
    if tj.tjCompress2(handle, px, W, 4 * W, H, tjpf_cmyk, ctypes.byref(buf), ctypes.byref(size),
                      tjsamp_420, 90, 0):
        raise RuntimeError("tjCompress2 failed")
    data = ctypes.string_at(buf, size.value)
    tj.tjFree(buf)
    tj.tjDestroy(handle)
    return write(name, data)


def pil_file(name, im, **kw):
    path = os.path.join(DIR, name)
    im.save(path, **kw)
    return path


def png_kind(path):
    """(bit depth, colour type, interlace, whether it has tRNS) from the file's bytes."""
    with open(path, "rb") as f:
        data = f.read()
    bits, ctype, interlace = data[24], data[25], data[28]
    return bits, ctype, interlace, b"tRNS" in data


def jpeg_kind(path):
    """(PIL's subsampling code, progressive, Adobe transform or None) of a JPEG."""
    im = Image.open(path)
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b"Adobe")
    return (JpegImagePlugin.get_sampling(im), bool(im.info.get("progressive")),
            data[at + 11] if at >= 0 else None)


def rgb_planar(im):
    """PIL's RGB image as planar bytes (R plane, G plane, B plane)."""
    return b"".join(band.tobytes() for band in im.split())


def cases():
    """(name, path, how the reference is made, what the file must be): 'convert' is PIL's
    convert("RGB"), 'high' the high byte of a 16-bit gray image's values, in the three
    planes; the last is png_kind's or jpeg_kind's answer (-1: 4:4:4's sampling for one
    channel, which PIL gives as -1)."""
    jpg = {"quality": 90}
    yield "jpeg rgb 4:2:0", pil_file("rgb420.jpg", photo("RGB"), subsampling=2, **jpg), \
        "convert", (2, False, None)
    yield "jpeg rgb 4:4:4", pil_file("rgb444.jpg", photo("RGB"), subsampling=0, **jpg), \
        "convert", (0, False, None)
    yield "jpeg rgb 4:2:0 progressive", pil_file("rgb420p.jpg", photo("RGB"), subsampling=2,
                                                 progressive=True, **jpg), \
        "convert", (2, True, None)
    yield "jpeg gray L", pil_file("gray.jpg", photo("L"), **jpg), "convert", (-1, False, None)
    yield "jpeg cmyk (PIL: Adobe, inverted)", pil_file("cmyk.jpg", photo("CMYK"), **jpg), \
        "convert", (-1, False, 0)
    yield "jpeg ycck (libturbojpeg)", ycck_jpeg("ycck.jpg"), "convert", (-1, False, 2)
    yield "png rgb", pil_file("rgb.png", photo("RGB")), "convert", (8, 2, 0, False)
    yield "png rgba", pil_file("rgba.png", photo("RGBA")), "convert", (8, 6, 0, False)
    yield "png la", pil_file("la.png", photo("LA")), "convert", (8, 4, 0, False)
    yield "png l", pil_file("l.png", photo("L")), "convert", (8, 0, 0, False)
    pal = photo("RGB").quantize(colors=37)
    trns = bytes(rng.randrange(256) for _ in range(37))
    yield "png p + tRNS", pil_file("p_trns.png", pal, transparency=trns), "convert", \
        (8, 3, 0, True)
    yield "png 1-bit", pil_file("bit1.png", photo("L").convert("1")), "convert", (1, 0, 0, False)
    gray16 = Image.new("I;16", (W, H))
    gray16.putdata([rng.randrange(65536) for _ in range(W * H)])
    yield "png I;16 gray", pil_file("gray16.png", gray16), "high", (16, 0, 0, False)
    rows = [[tuple(rng.randrange(65536) for _ in range(3)) for _ in range(W)] for _ in range(H)]
    yield "png rgb 16-bit (by hand)", write("rgb16.png", png_bytes(W, H, 16, 2, rows)), \
        "convert", (16, 2, 0, False)
    rows = [[tuple(rng.randrange(256) for _ in range(3)) for _ in range(W)] for _ in range(H)]
    yield "png rgb adam7 (by hand)", write("rgb_adam7.png", png_bytes(W, H, 8, 2, rows, True)), \
        "convert", (8, 2, 1, False)


def main():
    failures = []
    for name, path, how, kind in cases():
        got = (png_kind if path.endswith(".png") else jpeg_kind)(path)
        if got != kind:
            failures.append(f"{name}: the file written is {got}, not {kind}")
            print(f"{name:34s} FAILED (written as {got}, not {kind})")
            continue
        out = os.path.join(DIR, "out.raw")
        r = subprocess.run([DUMP, path, out], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"{name}: image_dump failed: {r.stderr.strip()}")
            print(f"{name:34s} FAILED ({r.stderr.strip()})")
            continue
        with open(out, "rb") as f:
            ours = f.read()
        im = Image.open(path)
        note = ""
        if how == "high":
            high = bytes(v >> 8 for v in im.getdata())
            ref = high * 3
            clipped = rgb_planar(im.convert("RGB"))
            note = (f"  (against the high byte; PIL's convert clips: max diff "
                    f"{max(abs(a - b) for a, b in zip(ours, clipped))})")
        else:
            ref = rgb_planar(im.convert("RGB"))
        if len(ours) != len(ref):
            failures.append(f"{name}: {len(ours)} bytes, PIL has {len(ref)}")
            print(f"{name:34s} FAILED (size)")
            continue
        diff = max(abs(a - b) for a, b in zip(ours, ref))
        bad = sum(a != b for a, b in zip(ours, ref))
        print(f"{name:34s} {im.mode:5s} {im.size[0]}x{im.size[1]}  max diff {diff}"
              f" ({bad} of {len(ref)} bytes differ){note}")
        if diff:
            failures.append(f"{name}: max diff {diff}, {bad} bytes differ")
    if failures:
        print("image_pil: FAILED\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("image_pil: every pixel equal to PIL's")


main()
