"""Reading QR codes back in tests: PNG and SVG to pixels, pixels to text (zxing-cpp)."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import png
import zxingcpp


def decode(pixels: bytes, width: int, height: int) -> list[zxingcpp.Barcode]:
    """The barcodes zxing-cpp finds in an 8-bit greyscale image."""
    return zxingcpp.read_barcodes(memoryview(pixels).cast("B", (height, width)))


def png_pixels(data: bytes) -> tuple[bytes, int, int]:
    """8-bit greyscale pixels of a PNG (any colour type), read with pypng."""
    width, height, rows, _ = png.Reader(bytes=data).asRGBA8()
    return b"".join(bytes(row[0::4]) for row in rows), width, height


MODULE = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H\1z")


def svg_pixels(data: bytes, scale: int = 8) -> tuple[bytes, int, int]:
    """Rasterise qrcode's path SVG (one unit square per dark module, on white) at `scale`."""
    svg = ElementTree.fromstring(data)
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    background = svg.find("svg:rect", namespace)
    assert background is not None and background.get("fill") == "white"
    _, _, width, height = (int(value) for value in svg.get("viewBox", "").split())
    path = svg.find("svg:path", namespace)
    assert path is not None
    commands = path.get("d", "")
    assert MODULE.sub("", commands) == "", "not the one-square-per-module path this reads"
    pixels = bytearray(b"\xff" * (width * scale) * (height * scale))
    for match in MODULE.finditer(commands):
        x, y = int(match[1]), int(match[2])
        assert (int(match[3]), int(match[4])) == (x + 1, y + 1)
        for row in range(y * scale, (y + 1) * scale):
            start = row * width * scale + x * scale
            pixels[start:start + scale] = b"\x00" * scale
    return bytes(pixels), width * scale, height * scale


def only_text(barcodes: list[zxingcpp.Barcode]) -> str:
    assert len(barcodes) == 1, barcodes
    (barcode,) = barcodes
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode and barcode.ec_level == "M"
    return barcode.text


def png_text(data: bytes) -> str:
    """The text of the one QR code in a PNG."""
    return only_text(decode(*png_pixels(data)))


def svg_text(data: bytes) -> str:
    """The text of the one QR code in an SVG drawn by qrcode."""
    return only_text(decode(*svg_pixels(data)))

