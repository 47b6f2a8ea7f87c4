#!/usr/bin/env python3
"""PSNR (dB) between two 8-bit RGB/RGBA PNGs of one size, standard library only:
   tests/bench/png_psnr.py a.png b.png   (used for the bf16-vs-fp32 figures in README)"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{path}: not a PNG'
    at, idat, w = 8, b'', None
    while at < len(data):
        n, kind = struct.unpack('>I4s', data[at:at + 8])
        body = data[at + 8:at + 8 + n]
        if kind == b'IHDR':
            w, h, depth, color = struct.unpack('>IIBB', body[:10])
            assert depth == 8 and color in (2, 6), f'{path}: only 8-bit RGB/RGBA'
            bpp = 3 if color == 2 else 4
        elif kind == b'IDAT':
            idat += body
        at += 12 + n
    raw, stride = zlib.decompress(idat), w * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return w, h, bpp, out


def main():
    (w1, h1, b1, p1), (w2, h2, b2, p2) = read_png(sys.argv[1]), read_png(sys.argv[2])
    assert (w1, h1, b1) == (w2, h2, b2), 'images differ in size'
    se = sum((x - y) ** 2 for i, (x, y) in enumerate(zip(p1, p2)) if b1 == 3 or i % 4 != 3)
    n = w1 * h1 * 3
    import math
    print('inf' if se == 0 else f'{10 * math.log10(255 * 255 / (se / n)):.2f}')


if __name__ == '__main__':
    main()
