"""Ink checks with real PDF engines: poppler's ``pdftoppm`` and PDFium (``pypdfium2``).

``render_poppler`` / ``render_pdfium`` turn every page of a PDF into a greyscale PIL image at
``dpi`` (72 by default, so one pixel is one point). ``has_ink`` says whether a rectangle given
in PDF points (x0, y0, x1, y1 from the bottom-left) contains dark pixels, looking ``inset``
points inside it so that a field's printed border does not count. ``pdfium_fields`` reads the
field values through PDFium's form API, the way Chrome's viewer sees them.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

DARK = 128  # a pixel darker than this (0-255) is ink; field backgrounds are ~235-250


def render_poppler(pdf: bytes, dpi: int = 72) -> list[Image.Image]:
    """Render every page with ``pdftoppm -r dpi -png``; fails if pdftoppm exits non-zero or
    prints anything (poppler reports every syntax problem it recovers from on stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.pdf"
        path.write_bytes(pdf)
        proc = subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-png", str(path), str(Path(tmp) / "page")],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert proc.stderr == b"", proc.stderr.decode(errors="replace")
        pages = sorted(Path(tmp).glob("page-*.png"))
        return [Image.open(p).convert("L") for p in pages]


def render_pdfium(pdf: bytes, dpi: int = 72) -> list[Image.Image]:
    """Render every page with PDFium, drawing form fields (``may_draw_forms``)."""
    doc = pdfium.PdfDocument(pdf)
    try:
        doc.init_forms()
        images = []
        for page in doc:
            bitmap = page.render(scale=dpi / 72, may_draw_forms=True)
            images.append(bitmap.to_pil().convert("L"))
        return images
    finally:
        doc.close()


def ink_pixels(
    image: Image.Image,
    rect: tuple[float, float, float, float],
    *,
    page_height: float = 841.89,
    dpi: int = 72,
    inset: float = 3.0,
) -> int:
    """Number of dark pixels inside ``rect`` (PDF points), ``inset`` points in from its edge."""
    k = dpi / 72
    x0, y0, x1, y1 = rect
    box = (
        round((x0 + inset) * k),
        round((page_height - y1 + inset) * k),
        round((x1 - inset) * k),
        round((page_height - y0 - inset) * k),
    )
    region = image.crop(box)
    histogram = region.histogram()
    return sum(histogram[:DARK])


def has_ink(image: Image.Image, rect: tuple[float, float, float, float], **kw: float) -> bool:
    """Whether ``rect`` has visible ink (at least three dark pixels)."""
    return ink_pixels(image, rect, **kw) >= 3


def _utf16(fn, *args) -> str:  # noqa: ANN001
    n = fn(*args, None, 0)
    if n <= 2:
        return ""
    buf = ctypes.create_string_buffer(n)
    fn(*args, ctypes.cast(buf, ctypes.POINTER(pdfium_c.FPDF_WCHAR)), n)
    return buf.raw[: n - 2].decode("utf-16-le")


def pdfium_fields(pdf: bytes) -> dict[str, str | bool]:
    """Field values as PDFium's form API reports them (check boxes / radios: checked state).

    Text fields map to their value; a check box maps to ``True``/``False``; a radio group
    maps to the export value of its checked widget (absent when none is).
    """
    doc = pdfium.PdfDocument(pdf)
    out: dict[str, str | bool] = {}
    try:
        doc.init_forms()
        env = doc.formenv.raw
        for page in doc:
            for i in range(pdfium_c.FPDFPage_GetAnnotCount(page.raw)):
                annot = pdfium_c.FPDFPage_GetAnnot(page.raw, i)
                try:
                    if pdfium_c.FPDFAnnot_GetSubtype(annot) != pdfium_c.FPDF_ANNOT_WIDGET:
                        continue
                    name = _utf16(pdfium_c.FPDFAnnot_GetFormFieldName, env, annot)
                    kind = pdfium_c.FPDFAnnot_GetFormFieldType(env, annot)
                    if kind == pdfium_c.FPDF_FORMFIELD_CHECKBOX:
                        out[name] = bool(pdfium_c.FPDFAnnot_IsChecked(env, annot))
                    elif kind == pdfium_c.FPDF_FORMFIELD_RADIOBUTTON:
                        if pdfium_c.FPDFAnnot_IsChecked(env, annot):
                            out[name] = _utf16(
                                pdfium_c.FPDFAnnot_GetFormFieldExportValue, env, annot
                            )
                    else:
                        out[name] = _utf16(pdfium_c.FPDFAnnot_GetFormFieldValue, env, annot)
                finally:
                    pdfium_c.FPDFPage_CloseAnnot(annot)
        return out
    finally:
        doc.close()


def pdfium_text(pdf: bytes) -> str:
    """The page text PDFium extracts (page content only; annotations are not included)."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(page.get_textpage().get_text_bounded() for page in doc)
    finally:
        doc.close()


def widget_map(pdf: bytes) -> dict[str, list[tuple[int, tuple[float, float, float, float], str]]]:
    """Field name -> its widgets as (page index, rect, on-state or "") read with pypdf."""
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    out: dict[str, list[tuple[int, tuple[float, float, float, float], str]]] = {}
    for index, page in enumerate(reader.pages):
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            if annot.get("/Subtype") != "/Widget":
                continue
            field = annot if "/T" in annot else annot["/Parent"].get_object()
            rect = tuple(float(v) for v in annot["/Rect"])
            states = [k[1:] for k in annot.get("/AP", {}).get("/N", {}) if k != "/Off"]
            on = states[0] if "/Kids" in field and states else ""
            out.setdefault(str(field["/T"]), []).append((index, rect, on))
    return out
