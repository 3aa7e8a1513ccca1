"""Build the fillable template ``forms/decision_record.pdf`` from the field spec.

Run ``python -m sharewise.forms.template`` after changing ``decision_record.toml``; it rewrites the
committed PDF. The build is deterministic (fixed ``/ID``, no timestamps), so regenerating
without a spec change gives the same bytes, and the tests check that the committed file's
fields match a fresh build.

Two passes:

1. :func:`layout` places every section and field on A4 pages in spec (tab) order, and
   :func:`draw_pages` draws the page graphics with reportlab: the header, one block per
   section with its guidance, each field's label and box. Labels use DejaVu Sans (and Bold for
   headings) from ``fonts-dejavu-core``; reportlab embeds the subsets it needs.
2. :func:`add_fields` adds the AcroForm with pypdf generic objects: one terminal field per
   spec field with ``/T`` = the spec name (flat, no hierarchy), ``/TU`` = the tooltip,
   ``/MaxLen``, read-only, multiline and combo flags, combo ``/Opt [[export label] ...]``,
   radio groups (a parent field whose kid widgets carry the option's export value as the
   on-state appearance name) and checkboxes (on-state ``/Yes``). Text fields use the
   embedded Type0 DejaVu Sans subset (:mod:`sharewise.forms.fonts`) through ``/AcroForm /DR`` and
   their ``/DA``. Every page has ``/Tabs /S`` and its widgets in ``/Annots`` in spec order.
   There is no JavaScript, no ``/AA`` and no ``/NeedAppearances``.

The document ``/Info`` carries ``/SharewiseSchema`` (the spec's schema id); prefill adds
``/SharewiseRecord`` and ``/SharewisePrefillHash``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from sharewise.forms.fonts import (
    BOLD_TTF,
    FONT_RESOURCE,
    REGULAR_TTF,
    SUBSET_NAME,
    FieldFont,
    subset_font_program,
)
from sharewise.forms.spec import FieldSpec, FormSpec, load_spec
from sharewise.forms.templatefile import (
    FOOTER_TAG,
    INTRO_TAG,
    MULTILINE_SIZE,
    TEXT_SIZE,
    template_path,
)

PAGE_W, PAGE_H = A4
MARGIN_X = 45.0
TOP = PAGE_H - 42.0
BOTTOM = 58.0
CONTENT_W = PAGE_W - 2 * MARGIN_X
GUTTER = 12.0
HALF_W = (CONTENT_W - GUTTER) / 2

LABEL_SIZE = 8.0
LABEL_LEAD = 10.0
GUIDE_SIZE = 8.3
GUIDE_LEAD = 10.6
LINE_H = 17.0  # single-line field box height
BUTTON = 10.0  # checkbox / radio button size

# Field flags (PDF 32000-1:2008, 12.7.3.1, 12.7.4.2-4)
FF_READ_ONLY = 1
FF_MULTILINE = 1 << 12
FF_DO_NOT_SPELL_CHECK = 1 << 22
FF_NO_TOGGLE_TO_OFF = 1 << 14
FF_RADIO = 1 << 15
FF_COMBO = 1 << 17
ANNOT_PRINT = 4

INK = Color(0, 0, 0)
LABEL_INK = Color(0.18, 0.18, 0.18)
GUIDE_INK = Color(0.32, 0.32, 0.32)
RULE_INK = Color(0.55, 0.55, 0.55)
BOX_LINE = Color(0.55, 0.58, 0.62)
BOX_FILL = Color(0.96, 0.97, 0.985)
READ_ONLY_FILL = Color(0.925, 0.925, 0.925)
ACCENT = Color(0.12, 0.23, 0.37)

CHECKBOX_ON = "Yes"



@dataclass
class WidgetBox:
    """One widget of a field: its page (0-based), rectangle and radio on-state name."""

    page: int
    rect: tuple[float, float, float, float]
    on_state: str | None = None


@dataclass
class Placement:
    """Where a spec field's widgets are."""

    field: FieldSpec
    widgets: list[WidgetBox] = field(default_factory=list)


@dataclass
class Layout:
    """The result of :func:`layout`: drawing operations per page and field placements."""

    pages: list[list[tuple]] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)


def _register_fonts() -> None:
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(REGULAR_TTF)))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(BOLD_TTF)))


def _is_half(f: FieldSpec) -> bool:
    """Whether the field always takes half the width (dates and drop-downs)."""
    return f.type in ("date", "datetime") or (f.type == "choice" and f.widget == "combo")


def _can_pair(f: FieldSpec) -> bool:
    """Whether the field may share a row with a neighbour (short single-line fields)."""
    if _is_half(f):
        return True
    return f.type in ("text", "email") and (f.max_length or 0) <= 254


def _multiline_height(f: FieldSpec) -> float:
    return 62.0 if (f.max_length or 0) > 2000 else 44.0


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    return simpleSplit(text, font, size, width)


class _Flow:
    """A cursor running down the pages, recording drawing operations."""

    def __init__(self) -> None:
        self.out = Layout()
        self.page = -1
        self.y = 0.0
        self.new_page()

    def new_page(self) -> None:
        self.out.pages.append([])
        self.page += 1
        self.y = TOP

    def ensure(self, height: float) -> None:
        if self.y - height < BOTTOM:
            self.new_page()

    def op(self, *args: object) -> None:
        self.out.pages[self.page].append(args)


def shown_label(f: FieldSpec) -> str:
    """The label as printed: with its marker, so whether (and when) the field is needed can
    be seen without hovering: "Decision (required)", "Reasons withheld (if you share in part)"."""
    return f"{f.label} ({f.marker})" if f.marker else f.label


def _label_lines(f: FieldSpec, width: float) -> list[str]:
    return _wrap(shown_label(f), "DejaVuSans", LABEL_SIZE, width)


def follows(f: FieldSpec, form: FormSpec) -> set[str]:
    """The fields of ``f``'s own section whose answer decides whether ``f`` is needed (its
    questions: ``f`` is their follow-up, and is printed on the same page as they are)."""
    section = {g.name for g in form.in_section(f.section)}
    return {other for alternative in f.required_when for other, _ in alternative
            if other in section and other != f.name}


def _check_lines(f: FieldSpec, width: float) -> list[str]:
    return _wrap(shown_label(f), "DejaVuSans", LABEL_SIZE + 0.5, width - BUTTON - 6)


def _field_height(f: FieldSpec, width: float) -> float:
    """Height of a field block (label + box + gap), without drawing it."""
    if f.type == "checkbox":
        return max(BUTTON, len(_check_lines(f, width)) * LABEL_LEAD) + 7
    label = len(_label_lines(f, width)) * LABEL_LEAD + 2
    if f.type == "choice" and f.widget == "radio":
        return label + len(_radio_rows(f, width)) * 15 + 5
    if f.type == "multiline":
        return label + _multiline_height(f) + 6
    return label + LINE_H + 6


def _radio_rows(f: FieldSpec, width: float) -> list[list[tuple[float, str, str]]]:
    """Options laid out in rows: (x offset, export value, label)."""
    rows: list[list[tuple[float, str, str]]] = [[]]
    x = 0.0
    for opt in f.options:
        w = BUTTON + 4 + pdfmetrics.stringWidth(opt.label, "DejaVuSans", LABEL_SIZE + 0.5)
        if x and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((x, opt.value, opt.label))
        x += w + 16
    return rows


def _place_field(flow: _Flow, f: FieldSpec, x: float, width: float) -> Placement:
    """Draw one field block at the cursor (the caller has ensured room); return widgets."""
    placement = Placement(f)
    top = flow.y
    if f.type == "checkbox":
        y0 = top - BUTTON - 2
        rect = (x, y0, x + BUTTON, y0 + BUTTON)
        flow.op("box", rect, BOX_FILL, BOX_LINE)
        for i, line in enumerate(_check_lines(f, width)):
            flow.op("text", x + BUTTON + 6, y0 + 2 - i * LABEL_LEAD, line, "DejaVuSans",
                    LABEL_SIZE + 0.5, INK)
        placement.widgets.append(WidgetBox(flow.page, rect))
        return placement
    y = top
    for line in _label_lines(f, width):
        y -= LABEL_LEAD
        flow.op("text", x, y + 2, line, "DejaVuSans", LABEL_SIZE, LABEL_INK)
    y -= 2
    if f.type == "choice" and f.widget == "radio":
        for row in _radio_rows(f, width):
            y -= 15
            for dx, value, label in row:
                bx, by = x + dx, y + 2
                rect = (bx, by, bx + BUTTON, by + BUTTON)
                flow.op("circle", bx + BUTTON / 2, by + BUTTON / 2, BUTTON / 2, BOX_FILL, BOX_LINE)
                flow.op("text", bx + BUTTON + 4, by + 2, label, "DejaVuSans", LABEL_SIZE + 0.5, INK)
                placement.widgets.append(WidgetBox(flow.page, rect, value))
        return placement
    height = _multiline_height(f) if f.type == "multiline" else LINE_H
    rect = (x, y - height, x + width, y)
    flow.op("box", rect, READ_ONLY_FILL if f.read_only else BOX_FILL, BOX_LINE)
    placement.widgets.append(WidgetBox(flow.page, rect))
    return placement


Row = tuple[tuple[FieldSpec, ...], float, float]  # fields side by side, their width, height


def _rows(fields: tuple[FieldSpec, ...]) -> list[Row]:
    """A section's fields in rows: two short fields (or two check boxes) share a row."""
    rows: list[Row] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        nxt = fields[i + 1] if i + 1 < len(fields) else None
        pair = nxt is not None and _can_pair(f) and _can_pair(nxt)
        checks = nxt is not None and f.type == "checkbox" and nxt.type == "checkbox"
        if pair or checks:
            assert nxt is not None
            h = max(_field_height(f, HALF_W), _field_height(nxt, HALF_W))
            rows.append(((f, nxt), HALF_W, h))
            i += 2
            continue
        w = HALF_W if _is_half(f) else CONTENT_W
        rows.append(((f,), w, _field_height(f, w)))
        i += 1
    return rows


def _groups(rows: list[Row], form: FormSpec) -> list[list[Row]]:
    """Rows in groups that stay on one page: a row joins the group before it when one of its
    fields follows up (see :func:`follows`) a field of that group."""
    groups: list[list[Row]] = []
    names: set[str] = set()
    for row in rows:
        asks = set().union(*(follows(f, form) for f in row[0]))
        if groups and asks & names:
            groups[-1].append(row)
        else:
            groups.append([row])
            names = set()
        names |= {f.name for f in row[0]}
    return groups


def _intro(form: FormSpec) -> str:
    if form.version < 2:
        return (
            "Record how you reached this decision, whether or not you share. Complete every "
            "part that applies to your decision. Type dates as DD/MM/YYYY. The form sends "
            "nothing by itself: save the completed file and upload it on the Sharewise page "
            "you downloaded it from. If you no longer have its link, ask for a new one in the "
            "case system."
        )
    return (
        "Record how you reached this decision, whether or not you share. A label says when "
        "its question needs an answer: (required) always, otherwise when it applies, such as "
        "(if you share). Type dates as DD/MM/YYYY and times as HH:MM, UK time. The form sends "
        "nothing by itself: save the completed file and upload it on the Sharewise page you "
        "downloaded it from; you can upload again as often as you need."
    )


def layout(form: FormSpec | None = None) -> Layout:
    """Place the header, sections and fields of ``form`` on A4 pages, in spec order."""
    _register_fonts()
    form = form or load_spec()
    flow = _Flow()
    # header block
    flow.op("text", MARGIN_X, flow.y - 16, form.title, "DejaVuSans-Bold", 16.5, ACCENT)
    y = flow.y - 32
    marked = form.version >= 2  # the final record drops what is marked (see forms.finalise)
    if marked:
        flow.op("begin", INTRO_TAG)
    for line in _wrap(_intro(form), "DejaVuSans", GUIDE_SIZE, CONTENT_W):
        flow.op("text", MARGIN_X, y, line, "DejaVuSans", GUIDE_SIZE, GUIDE_INK)
        y -= GUIDE_LEAD
    if marked:
        flow.op("end")
    flow.op("rule", MARGIN_X, y + 2, MARGIN_X + CONTENT_W, 1.2, ACCENT)
    flow.y = y - 8

    for section in form.sections:
        fields = form.in_section(section.number)
        if not fields:
            continue
        guide = _wrap(section.guidance, "DejaVuSans", GUIDE_SIZE, CONTENT_W)
        head_h = 20 + len(guide) * GUIDE_LEAD + 6
        rows = _rows(fields)
        # version 1's layout is frozen (its records keep their form): one row at a time
        groups = _groups(rows, form) if form.version >= 2 else [[row] for row in rows]
        first_h = sum(h for _, _, h in groups[0])  # the heading stays with its first question
        flow.ensure(head_h + (first_h if head_h + first_h <= TOP - BOTTOM else rows[0][2]))
        flow.y -= 6
        flow.op("text", MARGIN_X, flow.y - 11, section.title, "DejaVuSans-Bold", 10.5, ACCENT)
        flow.op("rule", MARGIN_X, flow.y - 16, MARGIN_X + CONTENT_W, 0.5, RULE_INK)
        flow.y -= 20
        for line in guide:
            flow.y -= GUIDE_LEAD
            flow.op("text", MARGIN_X, flow.y + 2, line, "DejaVuSans", GUIDE_SIZE, GUIDE_INK)
        flow.y -= 6
        for group in groups:
            height = sum(h for _, _, h in group)
            if height <= TOP - BOTTOM:  # a question and its follow-ups share a page
                flow.ensure(height)
            for row, width, h in group:
                flow.ensure(h)
                for n, f in enumerate(row):
                    x = MARGIN_X + n * (width + GUTTER)
                    flow.out.placements.append(_place_field(flow, f, x, width))
                flow.y -= h
    return flow.out


def draw_pages(plan: Layout, form: FormSpec | None = None) -> bytes:
    """Draw the page graphics of ``plan`` with reportlab (deterministic output)."""
    _register_fonts()
    form = form or load_spec()
    buf = io.BytesIO()
    c = Canvas(
        buf, pagesize=A4, invariant=1, pageCompression=1, initialFontName="DejaVuSans", lang="en-GB"
    )
    c.setTitle(form.title)
    c.setAuthor("Sharewise")
    c.setSubject(form.schema)
    c.setCreator("Sharewise forms.template")
    total = len(plan.pages)
    for number, ops in enumerate(plan.pages, start=1):
        for op in ops:
            kind = op[0]
            if kind == "text":
                _, x, y, text, font, size, color = op
                c.setFont(font, size)
                c.setFillColor(color)
                c.drawString(x, y, text)
            elif kind == "box":
                _, (x0, y0, x1, y1), fill, line = op
                c.setFillColor(fill)
                c.setStrokeColor(line)
                c.setLineWidth(0.6)
                c.rect(x0, y0, x1 - x0, y1 - y0, stroke=1, fill=1)
            elif kind == "circle":
                _, cx, cy, r, fill, line = op
                c.setFillColor(fill)
                c.setStrokeColor(line)
                c.setLineWidth(0.6)
                c.circle(cx, cy, r, stroke=1, fill=1)
            elif kind == "rule":
                _, x0, y, x1, width, color = op
                c.setStrokeColor(color)
                c.setLineWidth(width)
                c.line(x0, y, x1, y)
            elif kind == "begin":
                c.addLiteral(f"/{op[1]} BMC")
            elif kind == "end":
                c.addLiteral("EMC")
        if form.version >= 2:
            c.addLiteral(f"/{FOOTER_TAG} BMC")
        c.setFont("DejaVuSans", 7.5)
        c.setFillColor(GUIDE_INK)
        c.setStrokeColor(RULE_INK)
        c.setLineWidth(0.4)
        c.line(MARGIN_X, 40, PAGE_W - MARGIN_X, 40)
        c.drawString(MARGIN_X, 30, f"Sharewise · {form.title} · {form.schema}")
        c.drawRightString(PAGE_W - MARGIN_X, 30, f"Page {number} of {total}")
        if form.version >= 2:
            c.addLiteral("EMC")
        c.showPage()
    c.save()
    return buf.getvalue()


# ---------------------------------------------------------------- pass 2: the AcroForm


def _name(n: str) -> NameObject:
    return NameObject("/" + n)


def _rect(r: tuple[float, float, float, float]) -> ArrayObject:
    return ArrayObject(FloatObject(round(v, 2)) for v in r)


def _stream(writer: PdfWriter, data: bytes, entries: dict | None = None) -> IndirectObject:
    s = DecodedStreamObject()
    s.set_data(data)
    for k, v in (entries or {}).items():
        s[NameObject(k)] = v
    return writer._add_object(s)


def _form_xobject(
    writer: PdfWriter, width: float, height: float, content: bytes
) -> IndirectObject:
    return _stream(
        writer,
        content,
        {
            "/Type": _name("XObject"),
            "/Subtype": _name("Form"),
            "/BBox": _rect((0, 0, width, height)),
            "/Resources": DictionaryObject(),
        },
    )


def _tounicode(font: FieldFont) -> bytes:
    items = sorted(font.unicode_map().items())
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        for gid, cp in chunk:
            lines.append(f"<{gid:04X}> <{cp:04X}>")
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return ("\n".join(lines) + "\n").encode("ascii")


def _embed_field_font(writer: PdfWriter) -> IndirectObject:
    program = subset_font_program()
    font = FieldFont(program)
    file2 = DecodedStreamObject()
    file2.set_data(program)
    file2[NameObject("/Length1")] = NumberObject(len(program))
    file2 = file2.flate_encode(level=9)
    file2_ref = writer._add_object(file2)
    descriptor = DictionaryObject(
        {
            NameObject("/Type"): _name("FontDescriptor"),
            NameObject("/FontName"): _name(SUBSET_NAME),
            NameObject("/Flags"): NumberObject(32),
            NameObject("/FontBBox"): ArrayObject(NumberObject(v) for v in font.bbox),
            NameObject("/ItalicAngle"): NumberObject(0),
            NameObject("/Ascent"): NumberObject(font.ascent),
            NameObject("/Descent"): NumberObject(font.descent),
            NameObject("/CapHeight"): NumberObject(font.cap_height),
            NameObject("/StemV"): NumberObject(80),
            NameObject("/FontFile2"): file2_ref,
        }
    )
    widths = ArrayObject()
    for item in font.widths_array():
        if isinstance(item, list):
            widths.append(ArrayObject(NumberObject(w) for w in item))
        else:
            widths.append(NumberObject(item))
    cid = DictionaryObject(
        {
            NameObject("/Type"): _name("Font"),
            NameObject("/Subtype"): _name("CIDFontType2"),
            NameObject("/BaseFont"): _name(SUBSET_NAME),
            NameObject("/CIDSystemInfo"): DictionaryObject(
                {
                    NameObject("/Registry"): TextStringObject("Adobe"),
                    NameObject("/Ordering"): TextStringObject("Identity"),
                    NameObject("/Supplement"): NumberObject(0),
                }
            ),
            NameObject("/FontDescriptor"): writer._add_object(descriptor),
            NameObject("/DW"): NumberObject(1000),
            NameObject("/W"): widths,
            NameObject("/CIDToGIDMap"): _name("Identity"),
        }
    )
    tounicode = DecodedStreamObject()
    tounicode.set_data(_tounicode(font))
    type0 = DictionaryObject(
        {
            NameObject("/Type"): _name("Font"),
            NameObject("/Subtype"): _name("Type0"),
            NameObject("/BaseFont"): _name(SUBSET_NAME),
            NameObject("/Encoding"): _name("Identity-H"),
            NameObject("/DescendantFonts"): ArrayObject([writer._add_object(cid)]),
            NameObject("/ToUnicode"): writer._add_object(tounicode.flate_encode(level=9)),
        }
    )
    return writer._add_object(type0)


def _check_mark(size: float) -> bytes:
    s = size
    return (
        f"q 0 g 0 G 1.3 w 1 J 1 j {s * 0.2:.2f} {s * 0.52:.2f} m {s * 0.42:.2f} {s * 0.25:.2f} l "
        f"{s * 0.8:.2f} {s * 0.8:.2f} l S Q"
    ).encode()


def _dot(size: float) -> bytes:
    r = size * 0.27
    c = size / 2
    k = 0.5523 * r
    return (
        f"q 0 g {c + r:.2f} {c:.2f} m "
        f"{c + r:.2f} {c + k:.2f} {c + k:.2f} {c + r:.2f} {c:.2f} {c + r:.2f} c "
        f"{c - k:.2f} {c + r:.2f} {c - r:.2f} {c + k:.2f} {c - r:.2f} {c:.2f} c "
        f"{c - r:.2f} {c - k:.2f} {c - k:.2f} {c - r:.2f} {c:.2f} {c - r:.2f} c "
        f"{c + k:.2f} {c - r:.2f} {c + r:.2f} {c - k:.2f} {c + r:.2f} {c:.2f} c f Q"
    ).encode()


def text_da(f: FieldSpec) -> str:
    """The default appearance string of a text or combo field."""
    size = MULTILINE_SIZE if f.type == "multiline" else TEXT_SIZE
    return f"/{FONT_RESOURCE} {size:g} Tf 0 g"


def add_fields(page_pdf: bytes, plan: Layout, form: FormSpec | None = None) -> bytes:
    """Add the AcroForm, fields, widgets, field font and metadata to the drawn pages."""
    form = form or load_spec()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(page_pdf)))
    font_ref = _embed_field_font(writer)
    zadb = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): _name("Font"),
                NameObject("/Subtype"): _name("Type1"),
                NameObject("/BaseFont"): _name("ZapfDingbats"),
            }
        )
    )
    pages = writer.pages
    annots: list[ArrayObject] = [ArrayObject() for _ in pages]
    fields = ArrayObject()

    def widget_dict(box: WidgetBox) -> DictionaryObject:
        return DictionaryObject(
            {
                NameObject("/Type"): _name("Annot"),
                NameObject("/Subtype"): _name("Widget"),
                NameObject("/Rect"): _rect(box.rect),
                NameObject("/F"): NumberObject(ANNOT_PRINT),
                NameObject("/P"): pages[box.page].indirect_reference,
            }
        )

    for placement in plan.placements:
        f = placement.field
        common = {
            NameObject("/T"): TextStringObject(f.name),
            NameObject("/TU"): TextStringObject(f.tooltip),
        }
        if f.type == "choice" and f.widget == "radio":
            parent = DictionaryObject(common)
            parent[NameObject("/FT")] = _name("Btn")
            flags = FF_RADIO | FF_NO_TOGGLE_TO_OFF | (FF_READ_ONLY if f.read_only else 0)
            parent[NameObject("/Ff")] = NumberObject(flags)
            parent[NameObject("/V")] = _name("Off")
            parent_ref = writer._add_object(parent)
            kids = ArrayObject()
            for box in placement.widgets:
                assert box.on_state is not None
                w, h = box.rect[2] - box.rect[0], box.rect[3] - box.rect[1]
                kid = widget_dict(box)
                kid[NameObject("/Parent")] = parent_ref
                kid[NameObject("/AS")] = _name("Off")
                # each button's own accessible description: the option it stands for
                kid[NameObject("/Contents")] = TextStringObject(
                    f"{f.tooltip}: {f.label_for(box.on_state)}"
                )
                kid[NameObject("/MK")] = DictionaryObject(
                    {NameObject("/CA"): TextStringObject("l")}
                )
                kid[NameObject("/AP")] = DictionaryObject(
                    {
                        NameObject("/N"): DictionaryObject(
                            {
                                _name(box.on_state): _form_xobject(writer, w, h, _dot(w)),
                                _name("Off"): _form_xobject(writer, w, h, b""),
                            }
                        )
                    }
                )
                kid_ref = writer._add_object(kid)
                kids.append(kid_ref)
                annots[box.page].append(kid_ref)
            parent[NameObject("/Kids")] = kids
            fields.append(parent_ref)
            continue
        (box,) = placement.widgets
        w, h = box.rect[2] - box.rect[0], box.rect[3] - box.rect[1]
        obj = widget_dict(box)
        obj.update(common)
        flags = FF_READ_ONLY if f.read_only else 0
        if f.type == "checkbox":
            obj[NameObject("/FT")] = _name("Btn")
            obj[NameObject("/V")] = _name("Off")
            obj[NameObject("/AS")] = _name("Off")
            obj[NameObject("/DA")] = TextStringObject("/ZaDb 0 Tf 0 g")
            obj[NameObject("/MK")] = DictionaryObject({NameObject("/CA"): TextStringObject("4")})
            obj[NameObject("/AP")] = DictionaryObject(
                {
                    NameObject("/N"): DictionaryObject(
                        {
                            _name(CHECKBOX_ON): _form_xobject(writer, w, h, _check_mark(w)),
                            _name("Off"): _form_xobject(writer, w, h, b""),
                        }
                    )
                }
            )
        elif f.type == "choice":
            obj[NameObject("/FT")] = _name("Ch")
            flags |= FF_COMBO
            obj[NameObject("/Opt")] = ArrayObject(
                ArrayObject([TextStringObject(o.value), TextStringObject(o.label)])
                for o in f.options
            )
            obj[NameObject("/DA")] = TextStringObject(text_da(f))
            obj[NameObject("/AP")] = DictionaryObject(
                {NameObject("/N"): _form_xobject(writer, w, h, b"/Tx BMC EMC")}
            )
        else:
            obj[NameObject("/FT")] = _name("Tx")
            flags |= FF_DO_NOT_SPELL_CHECK if f.type in ("date", "datetime", "email") else 0
            if f.type == "multiline":
                flags |= FF_MULTILINE
            if f.max_length:
                obj[NameObject("/MaxLen")] = NumberObject(f.max_length)
            obj[NameObject("/DA")] = TextStringObject(text_da(f))
            obj[NameObject("/Q")] = NumberObject(0)
            obj[NameObject("/AP")] = DictionaryObject(
                {NameObject("/N"): _form_xobject(writer, w, h, b"/Tx BMC EMC")}
            )
        obj[NameObject("/Ff")] = NumberObject(flags)
        ref = writer._add_object(obj)
        annots[box.page].append(ref)
        fields.append(ref)

    for page, page_annots in zip(pages, annots, strict=True):
        page[NameObject("/Annots")] = page_annots
        page[NameObject("/Tabs")] = _name("S")
    acroform = DictionaryObject(
        {
            NameObject("/Fields"): fields,
            NameObject("/DR"): DictionaryObject(
                {
                    NameObject("/Font"): DictionaryObject(
                        {_name(FONT_RESOURCE): font_ref, _name("ZaDb"): zadb}
                    )
                }
            ),
            NameObject("/DA"): TextStringObject(f"/{FONT_RESOURCE} {TEXT_SIZE:g} Tf 0 g"),
        }
    )
    writer._root_object[NameObject("/AcroForm")] = writer._add_object(acroform)
    writer._root_object[NameObject("/ViewerPreferences")] = DictionaryObject(
        {NameObject("/DisplayDocTitle"): BooleanObject(True)}
    )
    writer.add_metadata(
        {
            "/Title": form.title,
            "/Author": "Sharewise",
            "/Subject": form.schema,
            "/Creator": "Sharewise forms.template",
            "/Producer": "Sharewise (reportlab, pypdf)",
            "/SharewiseSchema": form.schema,
        }
    )
    for key in ("/CreationDate", "/ModDate", "/Keywords"):
        if key in writer._info.get_object():
            del writer._info.get_object()[key]
    writer.pdf_header = b"%PDF-1.7"
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build_template(form: FormSpec | None = None) -> bytes:
    """Build the template PDF for ``form`` (default: the committed spec)."""
    form = form or load_spec()
    plan = layout(form)
    return add_fields(draw_pages(plan, form), plan, form)


def main() -> None:
    """Rewrite every version's committed template from its spec."""
    from sharewise.forms.spec import SPEC_PATHS

    for version in SPEC_PATHS:
        path = template_path(version)
        data = build_template(load_spec(version))
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
