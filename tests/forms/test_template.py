"""The committed template matches the spec and a fresh build, and is a clean, accessible form."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

from sharewise.forms.fonts import FONT_RESOURCE, REPLACEMENT, SUBSET_RANGES, FieldFont, field_font
from sharewise.forms.spec import load_spec
from sharewise.forms.template import (
    FF_COMBO,
    FF_MULTILINE,
    FF_RADIO,
    FF_READ_ONLY,
    build_template,
    layout,
)
from sharewise.forms.templatefile import template_path
from tests.forms.render import (
    has_ink,
    pdfium_fields,
    pdfium_text,
    render_pdfium,
    render_poppler,
    widget_map,
)

PAGES = {1: 3, 2: 7}


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def version(request) -> int:
    return request.param


@pytest.fixture(scope="module")
def SPEC(version):  # noqa: N802  (the spec under test, as the module once had it)
    return load_spec(version)


def describe(pdf: bytes) -> dict:
    """Everything about the fields that matters to a viewer or to our code."""
    reader = PdfReader(io.BytesIO(pdf))
    pages = {p.indirect_reference.idnum: i for i, p in enumerate(reader.pages)}
    out = {}
    for ref in reader.trailer["/Root"]["/AcroForm"]["/Fields"]:
        f = ref.get_object()
        widgets = [k.get_object() for k in f.get("/Kids", [])] or [f]
        out[str(f["/T"])] = {
            "FT": f["/FT"],
            "Ff": int(f.get("/Ff", 0)),
            "TU": str(f["/TU"]),
            "MaxLen": f.get("/MaxLen"),
            "DA": f.get("/DA"),
            "Opt": [[str(a), str(b)] for a, b in f.get("/Opt", [])],
            "contents": [str(k.get_object().get("/Contents")) for k in f.get("/Kids", [])],
            "widgets": [
                (
                    pages[w.raw_get("/P").idnum],
                    [round(float(v), 2) for v in w["/Rect"]],
                    sorted(str(k) for k in w["/AP"]["/N"])
                    if not isinstance(w["/AP"]["/N"].get_object(), StreamObject)
                    else "stream",
                )
                for w in widgets
            ],
        }
    return out


@pytest.fixture(scope="module")
def committed(version) -> bytes:
    return template_path(version).read_bytes()


@pytest.fixture(scope="module")
def fields(committed) -> dict:
    return describe(committed)


def test_regenerating_gives_the_same_fields_and_page_text(committed, fields, SPEC):
    fresh = build_template(SPEC)
    assert describe(fresh) == fields
    # labels and guidance are page graphics: a spec edit without a rebuild shows up here
    assert pdfium_text(fresh) == pdfium_text(committed)
    for f in SPEC.fields:
        assert f.label.split()[0] in pdfium_text(committed)
    assert len(PdfReader(io.BytesIO(fresh)).pages) == len(PdfReader(io.BytesIO(committed)).pages)


def test_build_is_deterministic(SPEC):
    assert build_template(SPEC) == build_template(SPEC)


def test_every_spec_field_is_present_flat_in_spec_order_with_its_tooltip(fields, SPEC):
    assert list(fields) == list(SPEC.names)
    for f in SPEC.fields:
        assert fields[f.name]["TU"] == f.tooltip
        assert "." not in f.name


def test_field_types_flags_and_lengths_follow_the_spec(fields, SPEC):
    for f in SPEC.fields:
        d = fields[f.name]
        assert bool(d["Ff"] & FF_READ_ONLY) == f.read_only, f.name
        if f.type == "checkbox":
            assert d["FT"] == "/Btn" and not d["Ff"] & FF_RADIO
            ((_, _, states),) = d["widgets"]
            assert states == ["/Off", "/Yes"]
        elif f.type == "choice" and f.widget == "radio":
            assert d["FT"] == "/Btn" and d["Ff"] & FF_RADIO
            on_states = [s for _, _, states in d["widgets"] for s in states if s != "/Off"]
            assert on_states == ["/" + v for v in f.option_values]
            assert d["contents"] == [f"{f.tooltip}: {o.label}" for o in f.options]
        elif f.type == "choice":
            assert d["FT"] == "/Ch" and d["Ff"] & FF_COMBO
            assert d["Opt"] == [[o.value, o.label] for o in f.options]
        else:
            assert d["FT"] == "/Tx"
            assert bool(d["Ff"] & FF_MULTILINE) == (f.type == "multiline"), f.name
            assert d["MaxLen"] == f.max_length
            assert d["DA"].startswith(f"/{FONT_RESOURCE} ")


def test_no_javascript_actions_or_need_appearances(committed):
    reader = PdfReader(io.BytesIO(committed))
    root = reader.trailer["/Root"]
    acro = root["/AcroForm"]
    assert "/NeedAppearances" not in acro and "/XFA" not in acro
    assert "/OpenAction" not in root and "/AA" not in root and "/Names" not in root
    for num in range(1, int(reader.trailer["/Size"])):
        obj = reader.get_object(num)
        if isinstance(obj, DictionaryObject):
            assert not {"/JS", "/JavaScript", "/AA", "/A", "/Launch"} & set(obj.keys()), num
    for token in (b"/JavaScript", b"/JS", b"/NeedAppearances", b"/OpenAction", b"/XFA"):
        assert token not in committed


def test_pages_are_a4_with_structure_tab_order_and_widgets_in_spec_order(committed, SPEC,
                                                                        version):
    reader = PdfReader(io.BytesIO(committed))
    assert len(reader.pages) == PAGES[version]
    order = []
    for page in reader.pages:
        assert [round(float(v)) for v in page.mediabox] == [0, 0, 595, 842]
        assert page["/Tabs"] == "/S"
        for ref in page["/Annots"]:
            w = ref.get_object()
            field = w if "/T" in w else w["/Parent"].get_object()
            if not order or order[-1] != field["/T"]:
                order.append(str(field["/T"]))
    assert order == list(SPEC.names)


def test_widgets_fit_the_page_and_do_not_overlap(fields):
    boxes = [(page, rect, name) for name, d in fields.items() for page, rect, _ in d["widgets"]]
    for page, (x0, y0, x1, y1), name in boxes:
        assert 30 <= x0 < x1 <= 565 and 50 <= y0 < y1 <= 812, name
    for i, (pa, a, na) in enumerate(boxes):
        for pb, b, nb in boxes[i + 1 :]:
            if pa == pb:
                apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                assert apart, (na, nb)


def test_field_font_is_an_embedded_unicode_type0_font(committed):
    reader = PdfReader(io.BytesIO(committed))
    acro = reader.trailer["/Root"]["/AcroForm"]
    font = acro["/DR"]["/Font"][f"/{FONT_RESOURCE}"].get_object()
    assert font["/Subtype"] == "/Type0" and font["/Encoding"] == "/Identity-H"
    assert isinstance(font.raw_get("/ToUnicode"), IndirectObject)
    cid = font["/DescendantFonts"][0].get_object()
    assert cid["/Subtype"] == "/CIDFontType2" and cid["/CIDToGIDMap"] == "/Identity"
    assert len(cid["/W"]) > 0
    program = cid["/FontDescriptor"]["/FontFile2"].get_data()
    assert FieldFont(program).num_glyphs == field_font().num_glyphs
    assert len(committed) < 400_000


def test_font_covers_the_promised_scripts_and_reports_the_rest():
    font = field_font()
    for text in ("Zoë Łódź-Ņikolajeva", "Αλέξανδρος", "Дмитрий Соколов", "Siân ŵ ẃ €£ — “”"):
        enc = font.encode(text)
        assert enc.missing == () and REPLACEMENT not in enc.text, text
    enc = font.encode("a𝔄b中")
    assert enc.missing == ("𝔄", "中") and enc.text == "a?b?"
    # decomposed input is drawn composed
    assert font.encode("Zoe\u0308").text == "Zoë"
    assert all(font.has(chr(lo)) for lo, _ in SUBSET_RANGES if lo not in (0x0300,))


def test_empty_template_renders_without_ink_in_any_field(committed, version):
    widgets = widget_map(committed)
    for pages in (render_poppler(committed), render_pdfium(committed)):
        assert len(pages) == PAGES[version]
        for name, boxes in widgets.items():
            for page, rect, _ in boxes:
                assert not has_ink(pages[page], rect, inset=2.5), name


def test_pdfium_sees_every_field_empty(committed, SPEC):
    seen = pdfium_fields(committed)
    assert set(SPEC.names) - set(seen) == {
        f.name for f in SPEC.fields if f.type == "choice" and f.widget == "radio"
    }
    assert all(v in ("", False) for v in seen.values())


# ---------------------------------------------------------------- version 2's layout and words


def _follow_ups(spec) -> list[tuple[str, str]]:
    """(question, follow-up) pairs, worked out here from the spec alone: a field is a
    follow-up of a question of its own section that its required_when names, when every
    field between the two in tab order is a follow-up of that question too (the block that
    reads top to bottom under it)."""
    pairs = []
    for i, f in enumerate(spec.fields):
        asks = {o for alt in f.required_when for o, _ in alt}
        for j in range(i - 1, -1, -1):
            q = spec.fields[j]
            if q.section != f.section:
                break
            if q.name in asks:
                pairs.append((q.name, f.name))
                break
            between = {o for alt in q.required_when for o, _ in alt}
            above = {g.name for g in spec.fields[:j] if g.section == f.section}
            if not between & above:
                break  # a field that is no one's follow-up ends the block
    return pairs


def test_v2_no_question_is_split_from_its_follow_ups_across_a_page_break():
    spec = load_spec(2)
    pages = {p.field.name: p.widgets[0].page for p in layout(spec).placements}
    pairs = _follow_ups(spec)
    assert len(pairs) >= 30  # the test has something to check
    split = [(q, f) for q, f in pairs if pages[q] != pages[f]]
    assert split == []
    # and the committed file agrees with the layout
    fields = describe(template_path(2).read_bytes())
    assert all(fields[q]["widgets"][0][0] == fields[f]["widgets"][0][0] for q, f in pairs)


def test_v2_layout_check_fails_for_a_layout_that_does_not_keep_groups_together():
    import dataclasses

    spec = load_spec(2)
    ungrouped = dataclasses.replace(spec, version=1, _by_name={})  # v1's row-by-row layout
    pages = {p.field.name: p.widgets[0].page for p in layout(ungrouped).placements}
    assert [(q, f) for q, f in _follow_ups(spec) if pages[q] != pages[f]] != []


def test_v2_labels_show_when_a_field_is_needed_without_hovering():
    spec = load_spec(2)
    text = " ".join(pdfium_text(template_path(2).read_bytes()).split())
    for f in spec.fields:
        if f.marker:
            assert f"({f.marker})" in text, f.name
    assert text.count("(required)") >= 8 and "(if you share)" in text


def test_v2_instructions_and_footers_are_marked_for_the_final_record():
    reader = PdfReader(io.BytesIO(template_path(2).read_bytes()))
    for number, page in enumerate(reader.pages):
        ops = [(operands, op) for operands, op in page.get_contents().operations if op == b"BMC"]
        tags = [str(operands[0]) for operands, _ in ops]
        assert "/SharewiseFooter" in tags
        assert ("/SharewiseIntro" in tags) == (number == 0)
