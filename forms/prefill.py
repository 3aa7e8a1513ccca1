"""Prefill the decision record: host values in, a PDF with real appearance streams out.

:func:`prefill` validates the host's values with :func:`forms.schemas.prefill_schema`, fills
them in with :func:`fill` and embeds the record id and a hash of the prefilled values in the
document ``/Info`` (``/SharewiseSchema``, ``/SharewiseRecord``, ``/SharewisePrefillHash``), so
an uploaded copy can be tied to its record.

How it is fast: the committed template is parsed once per process (:func:`_template`: each
field's object number, the serialised entries of its dictionary, its widget rectangle and
kids). A fill writes a PDF *incremental update*: the template's bytes unchanged, followed by
only the changed field / widget objects (with ``/V``, ``/AS`` and ``/AP``), one new appearance
stream per filled text field, a new ``/Info`` object and a new cross-reference section whose
trailer points back (``/Prev``) to the template's. Nothing in the template is re-parsed or
re-written per fill.

Appearances (visible in every viewer, no ``/NeedAppearances``):

* text, date and e-mail fields and drop-downs: ``/Tx BMC q ... BT ... ET Q EMC`` in the
  embedded DejaVu Sans (Identity-H glyph ids), 2 pt left padding, clipped to the box.
  Single-line text is centred vertically and shrunk (down to :data:`MIN_SIZE`) to fit the
  width; multi-line text is word-wrapped by the font's real advance widths, shrunk in half
  points down to :data:`MIN_SIZE` until it fits the height, and clipped after that.
  A drop-down shows the option's label; its ``/V`` is the export value.
* check boxes and radio groups: ``/V`` and ``/AS`` are set to the on-state the template
  defines (``/Yes``, or the option's export value); the template carries the appearances.

Limits and errors:

* An unknown field name, a choice value the field does not define or a value that is not a
  date where one is expected raises :class:`FormDataError` (never a silent "Off").
* A character the font cannot show is drawn as ``?`` and reported in
  :attr:`FilledForm.warnings` (the field name and code point only, never the value).
* Text too long for its box even at :data:`MIN_SIZE` is clipped in the appearance (the full
  value stays in ``/V``; a viewer shows all of it when the field is opened) and reported in
  :attr:`FilledForm.warnings`; :mod:`sharewise.forms.finalise` prints such values in full.
* Values longer than a field's ``/MaxLen`` are only rejected by :func:`prefill` (through the
  schema); :func:`fill` draws what it is given.
* ``None`` / ``""`` / ``False`` leave a field as the template has it (empty, unticked).
* :func:`fill` always starts from the template: it cannot update an already filled PDF.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from marshmallow import Schema, ValidationError
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject, NameObject

from sharewise.forms.fonts import FONT_RESOURCE, FieldFont, field_font, missing_warning
from sharewise.forms.schemas import prefill_schema, prefill_schema_excluding
from sharewise.forms.spec import FieldSpec, TenantOptions, form_for, load_spec
from sharewise.forms.templatefile import MULTILINE_SIZE, TEXT_SIZE, template_path
from sharewise.forms.values import to_display, values_hash

#: Smallest font size prefill shrinks text to before clipping it.
MIN_SIZE = 6.0
#: Left / right padding inside a text box, in points.
PADDING = 2.0
#: Top / bottom padding of multi-line text, in points.
V_PADDING = 1.5
#: Line spacing of multi-line text, as a multiple of the font size.
LEADING = 1.16


class FormDataError(ValueError):
    """Values that cannot go into the form; ``errors`` maps field name to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        """Keep ``errors`` (marshmallow-style) for a 422 response."""
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        super().__init__("invalid form data: " + ", ".join(sorted(self.errors)))


@dataclass(frozen=True)
class FilledForm:
    """A filled form: the PDF, the hash of the prefilled values and any font warnings."""

    pdf: bytes
    prefill_hash: str
    warnings: tuple[str, ...]


# ---------------------------------------------------------------- the parsed template


@dataclass(frozen=True)
class _Obj:
    """A template object that a fill may rewrite: number, generation, fixed entries."""

    num: int
    gen: int
    body: bytes  # serialised entries without the ones a fill sets (no << >>)


@dataclass(frozen=True)
class _Field:
    spec: FieldSpec
    obj: _Obj  # the field (merged field/widget, or a radio group's parent)
    width: float
    height: float
    kids: tuple[tuple[str, _Obj], ...] = ()  # radio: (on-state, widget)
    blank: bytes = b""  # a tenant_options field: its entries but /V and /Opt (/AP kept)


@dataclass(frozen=True)
class _Template:
    data: bytes
    startxref: int
    size: int
    root: bytes  # "N G R"
    info: _Obj
    id0: str  # hex of the permanent file identifier
    font_ref: bytes
    fields: dict[str, _Field]


_SKIP = {"/V", "/AS", "/AP"}
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")


def _body(obj: DictionaryObject, skip: set[str]) -> bytes:
    out = io.BytesIO()
    for key, value in obj.items():
        if key in skip:
            continue
        out.write(b" ")
        NameObject(key).write_to_stream(out)
        out.write(b" ")
        value.write_to_stream(out)
    return out.getvalue()


def _id_bytes(value: Any) -> bytes:
    return value.original_bytes if hasattr(value, "original_bytes") else bytes(value)


def _ref(ref: IndirectObject) -> bytes:
    return f"{ref.idnum} {ref.generation} R".encode()


def warm_up(versions: Collection[int] = (1, 2)) -> None:
    """Parse the templates and load the field font now rather than on the first fill (a
    server that imports the app before forking its workers then shares them)."""
    for version in versions:
        _template(version)
    field_font()


@cache
def _template(version: int = 1) -> _Template:
    """Parse a schema version's committed template once per process."""
    data = template_path(version).read_bytes()
    match = _STARTXREF.search(data[-64:])
    if not match:
        raise RuntimeError("the template must end with a classic startxref")
    reader = PdfReader(io.BytesIO(data))
    trailer = reader.trailer
    acro = trailer["/Root"]["/AcroForm"]
    spec = load_spec(version)
    fields: dict[str, _Field] = {}
    for ref in acro["/Fields"]:
        obj = ref.get_object()
        name = str(obj["/T"])
        f = spec[name]
        if "/Kids" in obj:
            kids = []
            width = height = 0.0
            for kid_ref in obj["/Kids"]:
                kid = kid_ref.get_object()
                on = next(k for k in kid["/AP"]["/N"] if k != "/Off")[1:]
                x0, y0, x1, y1 = (float(v) for v in kid["/Rect"])
                width, height = x1 - x0, y1 - y0
                kids.append(
                    (on, _Obj(kid_ref.idnum, kid_ref.generation, _body(kid, {"/AS"})))
                )
            body = _body(obj, {"/V"})
            fields[name] = _Field(f, _Obj(ref.idnum, ref.generation, body), width, height,
                                  tuple(kids))
            continue
        x0, y0, x1, y1 = (float(v) for v in obj["/Rect"])
        skip = {"/V", "/AS"} if f.type == "checkbox" else _SKIP
        if f.tenant_options:
            skip = skip | {"/Opt"}  # written with every fill: the tenant's choices added
        body = _body(obj, skip)
        blank = _body(obj, {"/V", "/Opt"}) if f.tenant_options else b""
        fields[name] = _Field(f, _Obj(ref.idnum, ref.generation, body), x1 - x0, y1 - y0,
                              blank=blank)
    missing = set(spec.names) - set(fields)
    if missing:
        raise RuntimeError(f"the template lacks fields {sorted(missing)}; rebuild it")
    info_ref = trailer.raw_get("/Info")
    own = {"/SharewiseSchema", "/SharewiseRecord", "/SharewisePrefillHash"}
    info = _Obj(info_ref.idnum, info_ref.generation, _body(info_ref.get_object(), own))
    font_ref = acro["/DR"].get_object()["/Font"].raw_get(f"/{FONT_RESOURCE}")
    return _Template(
        data=data if data.endswith(b"\n") else data + b"\n",
        startxref=int(match[1]),
        size=int(trailer["/Size"]),
        root=_ref(trailer.raw_get("/Root")),
        info=info,
        id0=_id_bytes(trailer["/ID"][0]).hex(),
        font_ref=_ref(font_ref),
        fields=fields,
    )


# ---------------------------------------------------------------- PDF text and appearances


def pdf_string(text: str) -> bytes:
    """A PDF text string: a literal for printable ASCII, UTF-16BE with BOM otherwise."""
    if text.isascii() and text.isprintable():
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + esc.encode("ascii") + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _wrap(font: FieldFont, paragraph: str, size: float, avail: float) -> list[str]:
    """Greedy word wrap of one drawable paragraph by real advance widths."""
    lines: list[str] = []
    space = font.width(" ", size)
    line: str | None = None
    line_w = 0.0
    for word in paragraph.split(" "):
        word_w = font.width(word, size)
        if line is not None and line_w + space + word_w <= avail:
            line += " " + word
            line_w += space + word_w
            continue
        if line is not None:
            lines.append(line)
        line, line_w = word, word_w
        while line_w > avail and len(line) > 1:
            # a word longer than the line: break it after the last character that fits
            cut, acc = len(line) - 1, 0.0
            for i, ch in enumerate(line):
                acc += font.width(ch, size)
                if acc > avail:
                    cut = max(i, 1)
                    break
            lines.append(line[:cut])
            line = line[cut:]
            line_w = font.width(line, size)
    lines.append(line or "")
    return lines


def _text_appearance(
    font: FieldFont, text: str, width: float, height: float, multiline: bool, size: float
) -> tuple[bytes, tuple[str, ...], bool]:
    """A text field's normal appearance, the characters it cannot show, whether it clips."""
    avail = width - 2 * PADDING
    missing: list[str] = []
    clipped = False
    if not multiline:
        enc = font.encode(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
        missing += enc.missing
        if enc.width * size > avail and enc.width:
            size = max(MIN_SIZE, int(avail / enc.width * 2) / 2)
            clipped = enc.width * size > avail
        asc, desc = font.ascent * size / 1000, font.descent * size / 1000
        y = (height - (asc - desc)) / 2 - desc
        lines_ops = f"{PADDING:g} {y:.2f} Td <{enc.hex}> Tj"
    else:
        paragraphs = []
        for para in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            enc = font.encode(para)
            for ch in enc.missing:
                if ch not in missing:
                    missing.append(ch)
            paragraphs.append(enc.text)
        fit_lines: list[str] = []
        while True:
            lines = [ln for p in paragraphs for ln in _wrap(font, p, size, avail)]
            capacity = int((height - 2 * V_PADDING + (LEADING - 1) * size) / (size * LEADING))
            if len(lines) <= capacity or size <= MIN_SIZE:
                clipped = len(lines) > capacity
                fit_lines = lines[: max(capacity + 1, 1)]  # one partly visible line, clipped
                break
            size = max(MIN_SIZE, size - 0.5)
        lead = size * LEADING
        y = height - V_PADDING - font.ascent * size / 1000
        ops = [f"{lead:.2f} TL {PADDING:g} {y:.2f} Td"]
        for i, line in enumerate(fit_lines):
            if i:
                ops.append("T*")
            if line:
                ops.append(f"<{font.glyph_hex(line)}> Tj")
        lines_ops = " ".join(ops)
    content = (
        f"/Tx BMC q 1 1 {width - 2:.2f} {height - 2:.2f} re W n "
        f"BT /{FONT_RESOURCE} {size:g} Tf 0 g {lines_ops} ET Q EMC"
    ).encode("ascii")
    return content, tuple(dict.fromkeys(missing)), clipped


# ---------------------------------------------------------------- writing the update


class _Update:
    """Collects objects for one incremental update."""

    def __init__(self, tpl: _Template) -> None:
        self.tpl = tpl
        self.chunks: list[bytes] = []
        self.offsets: dict[int, tuple[int, int]] = {}
        self.pos = len(tpl.data)
        self.next_num = tpl.size

    def add(self, num: int, gen: int, body: bytes) -> None:
        head = f"{num} {gen} obj\n".encode()
        chunk = head + body + b"\nendobj\n"
        self.offsets[num] = (self.pos, gen)
        self.chunks.append(chunk)
        self.pos += len(chunk)

    def new_num(self) -> int:
        num = self.next_num
        self.next_num += 1
        return num

    def stream(self, width: float, height: float, content: bytes) -> int:
        num = self.new_num()
        head = (
            f"<< /Type /XObject /Subtype /Form /BBox [0 0 {width:.2f} {height:.2f}] "
            f"/Resources << /Font << /{FONT_RESOURCE} "
        ).encode() + self.tpl.font_ref + f" >> >> /Length {len(content)} >>\nstream\n".encode()
        self.add(num, 0, head + content + b"\nendstream")
        return num

    def finish(self, info_body: bytes) -> bytes:
        tpl = self.tpl
        self.add(tpl.info.num, tpl.info.gen, b"<<" + info_body + b" >>")
        xref_at = self.pos
        nums = sorted(self.offsets)
        # The section starts with object 0 (the head of the free list, as in the template):
        # pypdf treats a section that starts elsewhere as a "not zero-indexed" table (a
        # warning when strict, a check of every object's header when not).
        xref = [b"xref\n0 1\n0000000000 65535 f\r\n"]
        i = 0
        while i < len(nums):
            j = i
            while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
                j += 1
            xref.append(f"{nums[i]} {j - i + 1}\n".encode())
            for num in nums[i : j + 1]:
                off, gen = self.offsets[num]
                xref.append(f"{off:010d} {gen:05d} n\r\n".encode())
            i = j + 1
        body = b"".join(self.chunks)
        id1 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        trailer = (
            f"trailer\n<< /Size {self.next_num} /Root ".encode()
            + tpl.root
            + f" /Info {tpl.info.num} {tpl.info.gen} R /Prev {tpl.startxref} "
            f"/ID [<{tpl.id0}> <{id1}>] >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
        )
        return b"".join([tpl.data, body, *xref, trailer])


def _options(spec: FieldSpec) -> bytes:
    """A drop-down's ``/Opt`` entry: ``[[export label] ...]``."""
    pairs = b" ".join(b"[" + pdf_string(o.value) + b" " + pdf_string(o.label) + b"]"
                      for o in spec.options)
    return b" /Opt [" + pairs + b"]"


def _set_field(
    up: _Update, font: FieldFont, f: _Field, shown: str | bool, spec: FieldSpec | None = None
) -> tuple[tuple[str, ...], bool]:
    """Write one field's objects; return the characters not shown and whether text clips.
    ``spec``: the record's own spec of the field (a tenant's choices added), if not the
    template's."""
    spec = spec or f.spec
    obj = f.obj
    extra = _options(spec) if spec.tenant_options else b""
    if spec.type == "checkbox":
        if shown:
            up.add(obj.num, obj.gen, b"<<" + obj.body + b" /V /Yes /AS /Yes >>")
        return (), False
    if spec.type == "choice" and spec.widget == "radio":
        for on, kid in f.kids:
            if on == shown:
                up.add(kid.num, kid.gen, b"<<" + kid.body + f" /AS /{on} >>".encode())
        up.add(obj.num, obj.gen, b"<<" + obj.body + f" /V /{shown} >>".encode())
        return (), False
    assert isinstance(shown, str)
    text = spec.label_for(shown) if spec.type == "choice" else shown
    multiline = spec.type == "multiline"
    size = MULTILINE_SIZE if multiline else TEXT_SIZE
    content, missing, clipped = _text_appearance(font, text, f.width, f.height, multiline, size)
    ap = up.stream(f.width, f.height, content)
    up.add(
        obj.num,
        obj.gen,
        b"<<" + obj.body + extra + b" /V " + pdf_string(shown)
        + f" /AP << /N {ap} 0 R >> >>".encode(),
    )
    return missing, clipped


def clipped_warning(field_name: str) -> str:
    """The warning for a value too long to show in its box even at :data:`MIN_SIZE`."""
    return (
        f"{field_name}: the text is longer than its box can show; viewers show all of it "
        "when the field is opened, and the final record prints it in full"
    )


def fill(
    values: Mapping[str, Any], *, record_id: str, prefill_hash: str | None = None,
    version: int = 1, tenant_options: TenantOptions = (),
) -> FilledForm:
    """Fill the template with normalised ``values`` (any spec fields) as an incremental update.

    Values are JSON-ready (text, choice export codes, booleans, ISO dates / date-times) or
    ``date`` / ``datetime`` objects. Raises :class:`FormDataError` for an unknown field, an
    unknown choice value or a malformed date. ``record_id`` (and ``prefill_hash`` if given)
    go into the document ``/Info``. ``version``: the record's schema version (its template);
    ``tenant_options``: the choices its tenant added (see :func:`sharewise.forms.spec.form_for`).
    """
    return fill_detailed(values, record_id=record_id, prefill_hash=prefill_hash,
                         version=version, tenant_options=tenant_options)[0]


def fill_detailed(
    values: Mapping[str, Any], *, record_id: str, prefill_hash: str | None = None,
    version: int = 1, tenant_options: TenantOptions = (),
) -> tuple[FilledForm, tuple[str, ...]]:
    """:func:`fill`, also returning the names of fields whose text is clipped in its box."""
    tpl = _template(version)
    spec = form_for(version, tenant_options)
    errors: dict[str, list[str]] = {}
    shown_values: list[tuple[_Field, str | bool]] = []
    for name, value in values.items():
        f = tpl.fields.get(name)
        if f is None:
            errors[name] = ["Unknown field."]
            continue
        try:
            shown = to_display(spec[name], value)
        except ValueError as exc:
            errors[name] = [str(exc)]
            continue
        if shown is None or shown is False or shown == "":
            continue
        shown_values.append((f, shown))
    if errors:
        raise FormDataError(errors)
    font = field_font()
    up = _Update(tpl)
    warnings: list[str] = []
    clipped_fields: list[str] = []
    if tenant_options:  # empty drop-downs of the tenant's choices still offer them
        written = {f.spec.name for f, _ in shown_values}
        for name, f in tpl.fields.items():
            if f.spec.tenant_options and name not in written:
                up.add(f.obj.num, f.obj.gen, b"<<" + f.blank + _options(spec[name]) + b" >>")
    for f, shown in shown_values:
        missing, clipped = _set_field(up, font, f, shown, spec[f.spec.name])
        if missing:
            warnings.append(missing_warning(f.spec.name, missing))
        if clipped:
            warnings.append(clipped_warning(f.spec.name))
            clipped_fields.append(f.spec.name)
    info = (
        tpl.info.body
        + b" /SharewiseSchema "
        + pdf_string(spec.schema)
        + b" /SharewiseRecord "
        + pdf_string(record_id)
    )
    if prefill_hash is not None:
        info += b" /SharewisePrefillHash " + pdf_string(prefill_hash)
    filled = FilledForm(up.finish(info), prefill_hash or "", tuple(warnings))
    return filled, tuple(clipped_fields)


def normalise_prefill(data: Mapping[str, Any], *, loaded: Collection[str] = (),
                      version: int = 1) -> dict[str, Any]:
    """Validate host prefill data and return it JSON-ready, every prefill field present.

    Dates become ``YYYY-MM-DD``, date-times ISO 8601 with their offset; an absent optional
    field is ``None``. Raises :class:`FormDataError` with marshmallow's messages.

    ``loaded``: prefill fields whose values in ``data`` were produced by this form's own
    marshmallow fields already (:func:`sharewise.forms.schemas.field_for` of the same spec field,
    required wherever the form requires it), then made JSON-ready as above; they are taken
    as they are instead of being loaded a second time. Only text (or an absent optional
    value) is taken so; anything else, or a required one missing, means the claim does not
    hold and every field is loaded.
    """
    if not isinstance(data, Mapping):
        raise FormDataError({"_schema": ["Invalid input type."]})
    if loaded:
        taken = _taken_as_loaded(data, frozenset(loaded), version)
        if taken is not None:
            rest = {k: v for k, v in data.items() if k not in taken}
            schema = prefill_schema_excluding(frozenset(taken), version)
            return _load_prefill(rest, schema, taken, version)
    return _load_prefill(dict(data), prefill_schema(load_spec(version)), {}, version)


@cache
def _prefill_optional(names: frozenset[str], version: int = 1
                      ) -> tuple[tuple[str, bool], ...] | None:
    """``(name, optional)`` of each of ``names``; ``None`` if one is not a prefill field."""
    spec = load_spec(version)
    if not all(name in spec and spec[name].prefilled for name in names):
        return None
    return tuple((name, spec[name].optional) for name in sorted(names))


def _taken_as_loaded(data: Mapping[str, Any], names: frozenset[str], version: int = 1
                     ) -> dict[str, Any] | None:
    """``names``' values if each is text, or ``None`` for an optional field; else ``None``."""
    fields = _prefill_optional(names, version)
    if fields is None:
        return None
    taken: dict[str, Any] = {}
    for name, optional in fields:
        value = data.get(name)
        if not (isinstance(value, str) or (value is None and optional)):
            return None
        taken[name] = value
    return taken


def _load_prefill(data: dict[str, Any], schema: Schema, taken: Mapping[str, Any],
                  version: int = 1) -> dict[str, Any]:
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        messages = exc.messages
        if not isinstance(messages, dict):
            messages = {"_schema": list(messages)}
        raise FormDataError(
            {k: (v if isinstance(v, list) else [str(v)]) for k, v in messages.items()}
        ) from None
    out: dict[str, Any] = {}
    for f in load_spec(version).prefilled_fields:
        value = taken[f.name] if f.name in taken else loaded.get(f.name)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        out[f.name] = value
    return out


def prefill(data: Mapping[str, Any], version: int = 1) -> FilledForm:
    """Validate the host's prefill ``data`` and return the prefilled form of ``version``.

    ``prefill_hash`` is :func:`sharewise.forms.values.values_hash` of :func:`normalise_prefill`'s
    result (every prefill field of the spec, ``None`` for an absent optional one).
    """
    values = normalise_prefill(data, version=version)
    digest = values_hash(values)
    return fill(values, record_id=values["record_id"], prefill_hash=digest, version=version)
