#!/usr/bin/env python3
"""Draws manifest/icon.png (256x256 RGBA): Matrix-style brackets around a padlock on a green
rounded square. Python standard library only (zlib + struct write the PNG); 4x4 supersampling
for smooth edges. Run: python3 manifest/make-icon.py  (writes next to this script)."""

import os
import struct
import zlib

SIZE = 256
SS = 4  # samples per pixel per axis

TOP = (0x12, 0xC9, 0x97)
BOTTOM = (0x0A, 0x8A, 0x6A)
WHITE = (0xFF, 0xFF, 0xFF)
DARK = (0x0B, 0x6E, 0x56)


def rounded_rect(x, y, x0, y0, x1, y1, r):
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def rect(x, y, x0, y0, x1, y1):
    return x0 <= x <= x1 and y0 <= y <= y1


def bracket(x, y, left):
    # A Matrix-logo bracket: a vertical bar with two short arms.
    x0, x1 = (40, 56) if left else (200, 216)
    arm = (40, 76) if left else (180, 216)
    return rect(x, y, x0, 52, x1, 204) or rect(x, y, arm[0], 52, arm[1], 68) or rect(
        x, y, arm[0], 188, arm[1], 204
    )


def shackle(x, y):
    # The padlock's shackle: the upper half of a ring, with straight legs down to the body.
    cx, cy, r_out, r_in = 128, 108, 34, 20
    d2 = (x - cx) ** 2 + (y - cy) ** 2
    if y <= cy:
        return r_in * r_in <= d2 <= r_out * r_out
    return y <= 130 and (cx - r_out <= x <= cx - r_in or cx + r_in <= x <= cx + r_out)


def keyhole(x, y):
    return (x - 128) ** 2 + (y - 154) ** 2 <= 11 ** 2 or rect(x, y, 123, 154, 133, 178)


def colour(x, y):
    """The colour at a sample point, or None for transparent."""
    if not rounded_rect(x, y, 0, 0, SIZE - 1, SIZE - 1, 52):
        return None
    if bracket(x, y, True) or bracket(x, y, False) or shackle(x, y):
        return WHITE
    if rounded_rect(x, y, 84, 122, 172, 196, 12):
        return DARK if keyhole(x, y) else WHITE
    t = y / (SIZE - 1)
    return tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM))


def pixels():
    rows = []
    step = 1.0 / SS
    for py in range(SIZE):
        row = bytearray([0])  # PNG filter type 0 (none)
        for px in range(SIZE):
            r = g = b = a = 0
            for sy in range(SS):
                for sx in range(SS):
                    c = colour(px + (sx + 0.5) * step, py + (sy + 0.5) * step)
                    if c is not None:
                        r += c[0]
                        g += c[1]
                        b += c[2]
                        a += 1
            n = SS * SS
            if a:
                row += bytes((r // a, g // a, b // a, round(255 * a / n)))
            else:
                row += bytes((0, 0, 0, 0))
        rows.append(bytes(row))
    return b"".join(rows)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def main():
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels(), 9))
        + chunk(b"IEND", b"")
    )
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.png")
    with open(out, "wb") as f:
        f.write(png)
    print(out)


if __name__ == "__main__":
    main()
