"""The final record: the completed form flattened, plus a summary page.

:func:`finalise` fills the template with the submitted values (:func:`forms.prefill.fill`),
then flattens it: every widget's normal appearance (the one ``/AS`` selects for check boxes
and radio buttons) is drawn into its page's content as a form XObject, and the widget
annotations and the ``/AcroForm`` are removed, so nobody can edit the evidence in a viewer.
Pages are copied into a fresh document, so no field or widget object is left in the file,
not even unreferenced.

After the form come summary pages drawn with reportlab in the same embedded DejaVu Sans
(extracted from the template by :mod:`forms.fonts`): record id, decision, completion time in
Europe/London and UTC, the SHA-256 of the submitted values (:func:`forms.values.values_hash`),
the audit trail as a table, and the full text of any value too long for its box on the form.

The document ``/Info`` keeps ``/SharewiseSchema`` and ``/SharewiseRecord`` and adds
``/SharewiseValuesSHA256``. The output is deterministic: the same arguments give the same
bytes (and so the same :attr:`FinalRecord.sha256`).

Errors: values the form cannot hold raise :class:`sharewise.forms.prefill.FormDataError`; a naive
``completed_at`` or a malformed audit entry raises ``ValueError``. Completeness is not
checked here (that is :mod:`forms.validate`'s job). Characters the font cannot show appear as
``?`` on the record; the values hash is always taken over the values as submitted.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    TextStringObject,
)
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from sharewise.forms.fonts import field_font
from sharewise.forms.prefill import fill_detailed
from sharewise.forms.spec import FormSpec, TenantOptions, form_for, load_spec
from sharewise.forms.templatefile import FOOTER_TAG, INTRO_TAG
from sharewise.forms.values import form_zone, to_display, values_hash

SUMMARY_FONT = "SharewiseSans"


@dataclass(frozen=True)
class FinalRecord:
    """The final record PDF, its SHA-256 and the hash of the submitted values."""

    pdf: bytes
    sha256: str
    values_sha256: str


# ---------------------------------------------------------------- flattening


def _appearance(annot: DictionaryObject) -> Any:
    ap = annot.get("/AP")
    if ap is None:
        return None
    normal = ap.get_object().get("/N")
    if normal is None:
        return None
    normal = normal.get_object()
    if isinstance(normal, DecodedStreamObject) or hasattr(normal, "get_data"):
        return normal
    state = annot.get("/AS")
    if state is None or state == "/Off" or state not in normal:
        return None
    return normal[state].get_object()


def _placement(rect: Sequence[float], bbox: Sequence[float]) -> str:
    """The ``cm`` operands mapping an appearance's BBox onto the annotation rectangle."""
    x0, y0, x1, y1 = rect
    bx0, by0, bx1, by1 = bbox
    sx = (x1 - x0) / (bx1 - bx0) if bx1 != bx0 else 1.0
    sy = (y1 - y0) / (by1 - by0) if by1 != by0 else 1.0
    return f"{sx:.4f} 0 0 {sy:.4f} {x0 - bx0 * sx:.2f} {y0 - by0 * sy:.2f}"


def _stream(writer: PdfWriter, data: bytes) -> Any:
    s = DecodedStreamObject()
    s.set_data(data)
    return writer._add_object(s)


def flatten(pdf: bytes) -> PdfWriter:
    """Draw every widget's appearance into page content; drop widgets and the AcroForm."""
    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter()
    for page in reader.pages:
        draws: list[tuple[Any, list[float]]] = []
        kept = ArrayObject()
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            if annot.get("/Subtype") != "/Widget":
                kept.append(ref)
                continue
            if int(annot.get("/F", 0)) & 2:  # hidden
                continue
            ap = _appearance(annot)
            if ap is not None:
                rect = [float(v) for v in annot["/Rect"]]
                rect = [min(rect[0], rect[2]), min(rect[1], rect[3]),
                        max(rect[0], rect[2]), max(rect[1], rect[3])]
                draws.append((ap, rect))
        if "/Annots" in page:
            del page[NameObject("/Annots")]
        if kept:
            page[NameObject("/Annots")] = kept
        for key in ("/Tabs",):
            if key in page:
                del page[NameObject(key)]
        new_page = writer.add_page(page)
        if not draws:
            continue
        resources = new_page.get("/Resources")
        resources = resources.get_object() if resources is not None else DictionaryObject()
        new_page[NameObject("/Resources")] = resources
        xobjects = resources.get("/XObject")
        xobjects = xobjects.get_object() if xobjects is not None else DictionaryObject()
        resources[NameObject("/XObject")] = xobjects
        ops = []
        for i, (ap, rect) in enumerate(draws):
            cloned = ap.clone(writer)
            name = f"/SWFlat{i}"
            xobjects[NameObject(name)] = cloned.indirect_reference
            bbox = [float(v) for v in ap.get("/BBox", [0, 0, rect[2] - rect[0], rect[3] - rect[1]])]
            matrix = ap.get("/Matrix")
            if matrix is not None and [float(v) for v in matrix] != [1, 0, 0, 1, 0, 0]:
                raise ValueError("appearance streams with a /Matrix are not supported")
            ops.append(f"q {_placement(rect, bbox)} cm {name} Do Q")
        contents = new_page.get("/Contents")
        parts = ArrayObject([_stream(writer, b"q\n")])
        if contents is not None:
            contents = contents.get_object()
            if isinstance(contents, ArrayObject):
                parts.extend(contents)
            else:
                parts.append(new_page.raw_get("/Contents"))
        parts.append(_stream(writer, ("\nQ\n" + "\n".join(ops) + "\n").encode("ascii")))
        new_page[NameObject("/Contents")] = parts
    return writer


def drop_marked(writer: PdfWriter, tags: frozenset[str]) -> None:
    """Remove the marked content ``/Tag BMC ... EMC`` of these tags from every page (version 2
    templates mark their fill-in instructions and page footers so)."""
    names = {NameObject("/" + tag) for tag in tags}
    for page in writer.pages:
        content = page.get_contents()
        if content is None:
            continue
        kept: list[Any] = []
        depth = 0  # inside a dropped section: how deeply marked content is nested
        for operands, operator in content.operations:
            if depth:
                if operator in (b"BMC", b"BDC"):
                    depth += 1
                elif operator == b"EMC":
                    depth -= 1
                continue
            if operator == b"BMC" and operands and operands[0] in names:
                depth = 1
                continue
            kept.append((operands, operator))
        content.operations = kept
        page.replace_contents(content)


def _footer_overlay(form: FormSpec, record_id: str, pages: int, total: int) -> PdfReader:
    """One page per form page: the final record's footer, numbered out of ``total``."""
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, invariant=1, initialFontName=_register_font())
    for number in range(1, pages + 1):
        _draw_footer(canvas, form, record_id, number, total)
        canvas.showPage()
    canvas.save()
    return PdfReader(io.BytesIO(buf.getvalue()))


def _draw_footer(canvas: Any, form: FormSpec, record_id: str, number: int, total: int) -> None:
    canvas.saveState()
    canvas.setFont(SUMMARY_FONT, 7.5)
    canvas.setFillColor(colors.HexColor("#555555"))
    canvas.drawString(20 * mm, 12 * mm, f"Sharewise \u00b7 {form.title} \u00b7 final record "
                      f"{record_id} \u00b7 {form.schema}")
    canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Page {number} of {total}")
    canvas.restoreState()


def _shown(form: FormSpec, name: str, value: Any) -> str | None:
    """A value as the summary shows it: a choice's label, a date as the form shows it."""
    field = form[name]
    if value is None or value == "" or value is False:
        return None
    if field.type == "choice":
        return field.label_for(str(value))
    if field.type == "checkbox":
        return "Yes"
    shown = to_display(field, value)
    return None if shown is None else str(shown)


# ---------------------------------------------------------------- the summary pages


def warm_up() -> None:
    """Register the summary font with reportlab now rather than on the first final record."""
    _register_font()


@cache
def _register_font() -> str:
    pdfmetrics.registerFont(TTFont(SUMMARY_FONT, io.BytesIO(field_font().program)))
    return SUMMARY_FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _register_font()
    base = ParagraphStyle("base", fontName=font, fontSize=9, leading=11.5)
    return {
        "title": ParagraphStyle(
            "title", parent=base, fontSize=15, leading=19, textColor=colors.HexColor("#1f3b5e")
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            fontSize=11,
            leading=14,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colors.HexColor("#1f3b5e"),
        ),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10),
        "hash": ParagraphStyle("hash", parent=base, fontSize=8.3, leading=11),
        "label": ParagraphStyle(
            "label", parent=base, fontSize=8.5, textColor=colors.HexColor("#444444")
        ),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _summary_pdf(
    *,
    record_id: str,
    decision: str | None,
    completed_at: datetime,
    values_sha256: str,
    audit: Sequence[Mapping[str, str]],
    full_text: Sequence[tuple[str, str]],
    version: int = 1,
    spec: FormSpec | None = None,
    values: Mapping[str, Any] | None = None,
    first_page: int = 1,
    total: int = 0,
) -> bytes:
    spec = spec or load_spec(version)
    st = _styles()
    london = completed_at.astimezone(form_zone())
    utc = completed_at.astimezone(UTC)
    decision_text = spec["decision"].label_for(decision) if decision else "Not recorded"
    rows = [
        ("Record", record_id),
        ("Decision", decision_text),
        ("Completed (UK time)", london.strftime("%d/%m/%Y %H:%M %Z")),
        ("Completed (UTC)", utc.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Form", spec.schema),
    ]
    for name in spec.summary:  # version 2: the legal basis chosen and who endorsed
        shown = _shown(spec, name, (values or {}).get(name))
        if shown is not None:
            rows.append((re.sub(r"\s*\((DD|HH)[^)]*\)\s*$", "", spec[name].label), shown))
    story: list[Any] = [
        _p("Decision record summary", st["title"]),
        Spacer(1, 4),
        _p(
            "This page is part of the final record. The pages before it show the completed "
            "form exactly as submitted; the fields can no longer be edited. The SHA-256 below "
            "is taken over the submitted values in Sharewise's canonical JSON form.",
            st["small"],
        ),
        Spacer(1, 8),
    ]
    cells = [[_p(k, st["label"]), _p(v, st["body"])] for k, v in rows]
    cells.append(
        [_p("SHA-256 of the submitted values", st["label"]), _p(values_sha256, st["hash"])]
    )
    table = Table(cells, colWidths=[40 * mm, None])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("FONTNAME", (0, 0), (-1, -1), SUMMARY_FONT),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#c8c8c8")),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    story += [table, _p("Audit trail", st["h2"])]
    if audit:
        data = [[_p("When (UK time)", st["label"]), _p("Event", st["label"]),
                 _p("By", st["label"])]]
        for entry in audit:
            when = datetime.fromisoformat(entry["at"])
            if when.tzinfo is None:
                raise ValueError("audit times must carry a UTC offset")
            shown = when.astimezone(form_zone()).strftime("%d/%m/%Y %H:%M:%S %Z")
            data.append(
                [_p(shown, st["small"]), _p(entry["event"], st["small"]),
                 _p(entry["actor"], st["small"])]
            )
        trail = Table(data, colWidths=[46 * mm, None, 50 * mm], repeatRows=1)
        trail.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("FONTNAME", (0, 0), (-1, -1), SUMMARY_FONT),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor("#1f3b5e")),
                    ("LINEBELOW", (0, 1), (-1, -1), 0.3, colors.HexColor("#d0d0d0")),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        story.append(trail)
    else:
        story.append(_p("No audit entries were supplied.", st["body"]))
    if full_text:
        story.append(_p("Text in full", st["h2"]))
        story.append(
            _p("These answers are longer than their box on the form can show.", st["small"])
        )
        for name, text in full_text:
            story += [Spacer(1, 5), _p(spec[name].label, st["label"]), _p(text, st["body"])]

    buf = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        if version >= 2:  # numbered with the form's pages: "Page 5 of 5"
            _draw_footer(canvas, spec, record_id, first_page + doc.page - 1, total)
            return
        canvas.saveState()
        canvas.setFont(SUMMARY_FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(20 * mm, 12 * mm, f"Sharewise final record {record_id}")
        canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Summary page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        invariant=1,
        initialFontName=SUMMARY_FONT,
        title="Decision record summary",
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


# ---------------------------------------------------------------- the public entry point


def _check_audit(audit: Sequence[Mapping[str, str]]) -> None:
    for i, entry in enumerate(audit):
        for key in ("at", "event", "actor"):
            if not isinstance(entry.get(key), str):
                raise ValueError(f"audit entry {i}: {key!r} must be a string")
        try:
            datetime.fromisoformat(entry["at"])
        except ValueError:
            raise ValueError(f"audit entry {i}: 'at' is not an ISO 8601 time") from None


def finalise(
    values: Mapping[str, Any],
    *,
    record_id: str,
    completed_at: datetime,
    audit: Sequence[Mapping[str, str]],
    decision: str | None = None,
    version: int = 1,
    tenant_options: TenantOptions = (),
) -> FinalRecord:
    """Build the final record PDF from the submitted normalised ``values``.

    ``completed_at`` is an aware date-time, ``audit`` entries ``{"at": ISO 8601 with offset,
    "event": str, "actor": str}`` in the order to print them. The summary shows the decision
    in ``values`` (by its label; "Not recorded" when there is none); ``decision``, if given,
    must be that same code (``""`` counts as none), and ``values["record_id"]``, if present,
    must be ``record_id``: the summary page never contradicts the values it hashes.
    ``version``: the record's schema version (its form).
    """
    if completed_at.tzinfo is None or completed_at.utcoffset() is None:
        raise ValueError("completed_at must be timezone-aware")
    submitted = values.get("decision") or None
    if decision is not None and (decision or None) != submitted:
        raise ValueError("decision differs from the decision in the submitted values")
    if values.get("record_id") not in (None, record_id):
        raise ValueError("record_id differs from the record_id in the submitted values")
    decision = submitted
    _check_audit(audit)
    options = tuple(tuple(pair) for pair in tenant_options)
    filled, clipped = fill_detailed(values, record_id=record_id, version=version,
                                    tenant_options=options)
    digest = values_hash(values)
    spec = form_for(version, options)
    full_text = [(name, str(values[name])) for name in spec.names if name in clipped]
    writer = flatten(filled.pdf)
    form_pages = len(writer.pages)

    def summary_pdf(total: int) -> bytes:
        return _summary_pdf(
            record_id=record_id,
            decision=decision,
            completed_at=completed_at,
            values_sha256=digest,
            audit=audit,
            full_text=full_text,
            version=version,
            spec=spec,
            values=values,
            first_page=form_pages + 1,
            total=total,
        )

    summary = summary_pdf(0)
    if version >= 2:
        # the blank form's instructions and footers go; every page is numbered out of all
        total = form_pages + len(PdfReader(io.BytesIO(summary)).pages)
        summary = summary_pdf(total)
        drop_marked(writer, frozenset({INTRO_TAG, FOOTER_TAG}))
        overlay = _footer_overlay(spec, record_id, form_pages, total)
        for page, footer in zip(writer.pages, overlay.pages, strict=True):
            page.merge_page(footer)
    writer.append(PdfReader(io.BytesIO(summary)))
    writer.add_metadata(
        {
            "/Title": f"{spec.title}: final record",
            "/Author": "Sharewise",
            "/Subject": spec.schema,
            "/Creator": "Sharewise forms.finalise",
            "/Producer": "Sharewise (reportlab, pypdf)",
            "/SharewiseSchema": spec.schema,
            "/SharewiseRecord": record_id,
            "/SharewiseValuesSHA256": digest,
        }
    )
    file_id = hashlib.md5(
        f"{record_id}\n{digest}\n{completed_at.isoformat()}".encode(), usedforsecurity=False
    ).digest()
    writer._root_object[NameObject("/Lang")] = TextStringObject("en-GB")
    writer._ID = ArrayObject([ByteStringObject(file_id), ByteStringObject(file_id)])
    writer.pdf_header = b"%PDF-1.7"
    out = io.BytesIO()
    writer.write(out)
    pdf = out.getvalue()
    return FinalRecord(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), values_sha256=digest)
