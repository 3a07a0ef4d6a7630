"""QR codes of collection links, as PNG or SVG, for the landing page and for the CLI.

Error correction M (15% of the code may be damaged) and the quiet zone of 4 modules the QR
standard asks for. PNG is drawn by qrcode's pure-Python backend (pypng), so the service needs
no Pillow; SVG is one path on a white background, which stays scannable on a dark page.
"""

from __future__ import annotations

import io
from pathlib import Path

import qrcode
from qrcode.image.base import BaseImage
from qrcode.image.pure import PyPNGImage
from qrcode.image.svg import SvgPathFillImage

from reconciler.errors import MimError

ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
BORDER = 4  # modules of quiet zone on every side
BOX_SIZE = 10  # pixels per module in a PNG (in an SVG: 1 mm)


class QrFormatError(MimError, ValueError):
    """A QR code was asked for in a file format other than PNG or SVG."""

    def __init__(self, path: Path) -> None:
        suffix = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        super().__init__(f"{path}: cannot write a QR code to a file with {suffix}; name it "
                         "*.png or *.svg")
        self.path = path


def qr_code(text: str) -> qrcode.QRCode[BaseImage]:
    """The QR code of `text`, in the smallest version that holds it."""
    code: qrcode.QRCode[BaseImage] = qrcode.QRCode(
        error_correction=ERROR_CORRECTION, border=BORDER, box_size=BOX_SIZE)
    code.add_data(text)
    code.make(fit=True)
    return code


def _render(text: str, factory: type[BaseImage]) -> bytes:
    buffer = io.BytesIO()
    qr_code(text).make_image(image_factory=factory).save(buffer)
    return buffer.getvalue()


def qr_png(text: str) -> bytes:
    """A black-on-white PNG (1-bit greyscale) of the QR code of `text`."""
    return _render(text, PyPNGImage)


def qr_svg(text: str) -> bytes:
    """An SVG document of the QR code of `text`, one module per viewBox unit."""
    return _render(text, SvgPathFillImage)


FORMATS = {".png": qr_png, ".svg": qr_svg}


def save_qr(text: str, path: Path) -> None:
    """Write the QR code of `text` to `path`, as PNG or SVG by its suffix (.png or .svg)."""
    draw = FORMATS.get(path.suffix.lower())
    if draw is None:
        raise QrFormatError(path)
    path.write_bytes(draw(text))
