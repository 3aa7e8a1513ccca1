"""Builders for the bad-upload corpus: every file is made by the tests, nothing binary is committed.

Each builder returns the bytes of one hostile or wrong upload. Those that start from the right
form take the prefilled PDF (``base``) and change it with pypdf (an incremental update, as a
viewer would save) or rewrite it; the rest are assembled object by object by :func:`assemble`.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from functools import cache

from pypdf import PdfReader, PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

# ------------------------------------------------------------------ raw assembly


def assemble(objects: dict[int, bytes], *, root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A classic PDF with an xref table from ``{number: body}`` (bodies without obj/endobj)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n")
    size = max(objects) + 1
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for num in range(1, size):
        if num in offsets:
            out.write(b"%010d 00000 n \n" % offsets[num])
        else:
            out.write(b"0000000000 65535 f \n")
    out.write(b"trailer\n<< /Size %d /Root %d 0 R %s>>\n" % (size, root, trailer_extra))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _minimal_page_objects() -> dict[int, bytes]:
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    }


def plain_pdf() -> bytes:
    """A valid one-page PDF with no form at all (not our form)."""
    return assemble(_minimal_page_objects())


# ------------------------------------------------------------------ not PDFs


def zero_bytes() -> bytes:
    return b""


def png_renamed() -> bytes:
    """A real 1x1 PNG image (what a phone photo of the form would be)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def zip_stored(base: bytes, name: str = "decision.pdf") -> bytes:
    """A ZIP archive holding the form uncompressed (``ZIP_STORED``): the PDF's bytes sit
    whole inside it, after the archive's local file header."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(name, base)
    data = out.getvalue()
    assert base in data and data.startswith(b"PK\x03\x04")
    return data


def prefixed(base: bytes, prefix: bytes) -> bytes:
    """The form behind a few bytes (a UTF-8 byte order mark, whitespace): PDF readers skip
    them, the product rule does not."""
    return prefix + base


def truncated(base: bytes) -> bytes:
    """The upload cut off part way (a dropped connection)."""
    return base[: len(base) * 2 // 3]


def garbage_after_header() -> bytes:
    """Starts like a PDF, then nothing a parser can use."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 40


# ------------------------------------------------------------------ changed copies of our form


def _writer(base: bytes, *, incremental: bool = True) -> PdfWriter:
    reader = PdfReader(io.BytesIO(base))
    if incremental:
        return PdfWriter(reader, incremental=True)
    return PdfWriter(clone_from=reader)


def _bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted(base: bytes) -> bytes:
    """The form encrypted with an empty user password (opens without asking in a viewer)."""
    writer = _writer(base, incremental=False)
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    return _bytes(writer)


def javascript(base: bytes) -> bytes:
    """``/Names /JavaScript`` and a JavaScript ``/OpenAction``."""
    writer = _writer(base, incremental=False)
    writer.add_open_action(JavaScript("app.alert('hello');"))  # goes into /Names /JavaScript
    action = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"),
         NameObject("/JS"): TextStringObject("app.launchURL('https://example.invalid');")}
    )
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    return _bytes(writer)


def open_action_only(base: bytes) -> bytes:
    """Only a JavaScript ``/OpenAction`` (no name tree), saved as an incremental update."""
    writer = _writer(base)
    action = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("1")}
    )
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    return _bytes(writer)


def _field(writer: PdfWriter, name: str) -> DictionaryObject:
    for ref in writer._root_object["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj.get("/T") == name:
            return obj
    raise KeyError(name)


def field_action(base: bytes, kind: str = "/Launch", *, additional: bool = True) -> bytes:
    """A field with an action: ``/AA`` (keystroke etc.) or ``/A`` of the given type."""
    writer = _writer(base)
    field = _field(writer, "decision_reasons")
    action = DictionaryObject({NameObject("/S"): NameObject(kind)})
    if kind == "/Launch":
        action[NameObject("/F")] = TextStringObject("calc.exe")
    if kind == "/SubmitForm":
        action[NameObject("/F")] = TextStringObject("https://example.invalid/collect")
    if kind == "/JavaScript":
        action[NameObject("/JS")] = TextStringObject("event.value = 1;")
    ref = writer._add_object(action)
    if additional:
        field[NameObject("/AA")] = DictionaryObject({NameObject("/K"): ref})
    else:
        field[NameObject("/A")] = ref
    return _bytes(writer)


def _with_uri_link(base: bytes, *, then_javascript: bool) -> bytes:
    """The form with a ``/URI`` link annotation, optionally followed (``/Next``) by JavaScript."""
    writer = _writer(base)
    action = DictionaryObject({
        NameObject("/S"): NameObject("/URI"),
        NameObject("/URI"): TextStringObject("https://example.org/"),
    })
    if then_javascript:
        action[NameObject("/Next")] = writer._add_object(DictionaryObject(
            {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("1")}
        ))
    link = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"),
        NameObject("/Subtype"): NameObject("/Link"),
        NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
        NameObject("/A"): action,
    })
    page = writer.pages[0]
    page[NameObject("/Annots")].append(writer._add_object(link))
    return _bytes(writer)


def link_with_next_chain(base: bytes) -> bytes:
    """A harmless-looking ``/URI`` link whose ``/Next`` runs JavaScript."""
    return _with_uri_link(base, then_javascript=True)


def harmless_link(base: bytes) -> bytes:
    """A plain ``/URI`` link annotation (accepted: not active content)."""
    return _with_uri_link(base, then_javascript=False)


def embedded_file(base: bytes) -> bytes:
    """A file attached to the document (``/Names /EmbeddedFiles``)."""
    writer = _writer(base, incremental=False)
    writer.add_attachment("notes.txt", b"attached")
    return _bytes(writer)


def xfa(base: bytes) -> bytes:
    """An ``/XFA`` entry in the AcroForm (a dynamic XFA form)."""
    writer = _writer(base)
    packet = writer._add_object(DictionaryObject())
    writer._root_object["/AcroForm"][NameObject("/XFA")] = ArrayObject(
        [TextStringObject("template"), packet]
    )
    return _bytes(writer)


def set_text(base: bytes, name: str, value: str, *, incremental: bool = True) -> bytes:
    """Change one field's ``/V`` directly in the file (what a tampering tool does)."""
    writer = _writer(base, incremental=incremental)
    _field(writer, name)[NameObject("/V")] = TextStringObject(value)
    return _bytes(writer)


def set_info(base: bytes, **entries: str) -> bytes:
    """Change document metadata entries (``SharewiseRecord="..."``)."""
    writer = _writer(base)
    writer.add_metadata({f"/{k}": v for k, v in entries.items()})
    return _bytes(writer)


def without_field(base: bytes, name: str) -> bytes:
    """The form with one field removed from ``/AcroForm /Fields``."""
    writer = _writer(base, incremental=False)
    fields = writer._root_object["/AcroForm"]["/Fields"]
    for i, ref in enumerate(list(fields)):
        if ref.get_object().get("/T") == name:
            del fields[i]
            break
    return _bytes(writer)


# ------------------------------------------------------------------ resource exhaustion


@cache
def flate_bomb(declared: int = 150_000_000) -> bytes:
    """An object stream that inflates to ``declared`` bytes (it says so in ``/DL``).

    The catalog's ``/AcroForm`` lives inside it, so a reader must inflate it to find the
    form. About 150 kB on disk.
    """
    header = b"4 0 "
    first = len(header)
    payload = header + b"<< /Fields [] >>" + b" " * (declared - first - 16)
    compressed = zlib.compress(payload, 9)
    objects = _minimal_page_objects()
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R /AcroForm 4 0 R >>"
    objects[5] = (
        b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /DL %d /Length %d >>\nstream\n"
        % (first, declared, len(compressed)) + compressed + b"\nendstream"
    )
    return _with_xref_stream(objects, compressed_objects={4: (5, 0)})


def _with_xref_stream(
    objects: dict[int, bytes], *, compressed_objects: dict[int, tuple[int, int]]
) -> bytes:
    """Like :func:`assemble` but with a cross-reference stream (needed for object streams)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n")
    xref_num = max([*objects, *compressed_objects]) + 1
    offsets[xref_num] = out.tell()
    rows = [b"\x00" + (0).to_bytes(4, "big") + b"\xff\xff"]
    for num in range(1, xref_num + 1):
        if num in compressed_objects:
            stream, index = compressed_objects[num]
            rows.append(b"\x02" + stream.to_bytes(4, "big") + index.to_bytes(2, "big"))
        elif num in offsets:
            rows.append(b"\x01" + offsets[num].to_bytes(4, "big") + b"\x00\x00")
        else:
            rows.append(b"\x00" + (0).to_bytes(4, "big") + b"\x00\x00")
    data = b"".join(rows)
    out.write(
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
        % (xref_num, xref_num + 1, len(data)) + data + b"\nendstream\nendobj\n"
    )
    out.write(b"startxref\n%d\n%%%%EOF\n" % offsets[xref_num])
    return out.getvalue()


def circular_xref() -> bytes:
    """An incremental update whose xref ``/Prev`` points back at itself."""
    first = assemble(_minimal_page_objects())
    start = len(first)
    body = b"4 0 obj\n<< /Fields [] >>\nendobj\n"
    xref = start + len(body)
    section = (
        b"xref\n4 1\n%010d 00000 n \ntrailer\n<< /Size 5 /Root 1 0 R /Prev %d >>\n"
        b"startxref\n%d\n%%%%EOF\n" % (start, xref, xref)
    )
    return first + body + section


def self_referencing() -> bytes:
    """Objects that refer to themselves: a catalog ``/Pages`` loop and a field tree loop."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 4 0 R >>",
        2: b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        4: b"<< /Fields [5 0 R] >>",
        5: b"<< /T (record_id) /Kids [5 0 R 6 0 R] >>",
        6: b"6 0 R",
    }
    return assemble(objects)


def field_tree_loop(base: bytes) -> bytes:
    """Our form with one field listing itself among its ``/Kids`` (a loop in the tree)."""
    writer = _writer(base)
    field = _field(writer, "lawful_basis")
    field[NameObject("/Kids")].append(field.indirect_reference)
    return _bytes(writer)


def oversized(max_bytes: int) -> bytes:
    """A syntactically fine PDF just over the size limit (a padded comment)."""
    pdf = plain_pdf()
    return pdf[:9] + b"%" + b"x" * (max_bytes + 1 - len(pdf)) + b"\n" + pdf[9:]


def set_entries(
    base: bytes, name: str, entries: dict, *, kids: dict | None = None, incremental: bool = True
) -> bytes:
    """Set raw entries on a field (and optionally on all its widget kids), incrementally.

    Values are pypdf objects; used to build the ways different writers store a value (a
    radio's ``/V`` missing with only a kid's ``/AS`` on, ``/Opt`` index states...).
    """
    writer = _writer(base, incremental=incremental)
    field = _field(writer, name)
    for key, value in entries.items():
        if value is None:
            field.pop(NameObject(key), None)
        else:
            field[NameObject(key)] = value
    for kid_ref in field.get("/Kids", []) if kids else []:
        kid = kid_ref.get_object()
        for key, value in kids(kid).items() if callable(kids) else kids.items():
            kid[NameObject(key)] = value
    return _bytes(writer)


def append_update(base: bytes, bodies: dict[int, bytes] | dict[tuple[int, int], bytes]) -> bytes:
    """Append a hand-written incremental update replacing objects ``{number: body}`` (or
    ``{(number, generation): body}``; each entry gets its own cross-reference subsection, so
    one number can be listed with two generations)."""
    reader = PdfReader(io.BytesIO(base))
    trailer = reader.trailer
    prev = int(re.findall(rb"startxref\s+(\d+)", base[-1024:])[-1])
    out = io.BytesIO()
    out.write(base if base.endswith(b"\n") else base + b"\n")
    offsets = {}
    refs = {key if isinstance(key, tuple) else (key, 0): body for key, body in bodies.items()}
    for (num, gen), body in sorted(refs.items()):
        offsets[num, gen] = out.tell()
        out.write(b"%d %d obj\n" % (num, gen) + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n")
    for (num, gen), offset in sorted(offsets.items()):
        out.write(b"%d 1\n%010d %05d n \n" % (num, offset, gen))
    root = trailer.raw_get("/Root")
    info = trailer.raw_get("/Info")
    extra = b" /Info %d %d R" % (info.idnum, info.generation) if info is not None else b""
    size = max(int(trailer["/Size"]), max(num for num, _ in refs) + 1)
    out.write(
        b"trailer\n<< /Size %d /Root %d %d R /Prev %d%s >>\nstartxref\n%d\n%%%%EOF\n"
        % (size, root.idnum, root.generation, prev, extra, xref)
    )
    return out.getvalue()


def _first_page_with(base: bytes, *annotations: bytes) -> tuple[int, int, bytes, int]:
    """The first page's number, generation and body with ``annotations`` (raw references)
    added to its ``/Annots``, and the first free object number."""
    reader = PdfReader(io.BytesIO(base))
    ref = reader.trailer["/Root"]["/Pages"].raw_get("/Kids")[0]
    page = ref.get_object()
    kept = DictionaryObject({k: v for k, v in page.items() if k != "/Annots"})
    body = io.BytesIO()
    kept.write_to_stream(body)
    refs = b" ".join(b"%d %d R" % (a.idnum, a.generation) for a in page.raw_get("/Annots"))
    annots = b" /Annots [" + b" ".join((refs, *annotations)) + b"] >>"
    return ref.idnum, ref.generation, body.getvalue().rstrip()[:-2] + annots, int(
        reader.trailer["/Size"]
    )


def next_chain_other_generation(base: bytes) -> bytes:
    """A link whose harmless ``/URI`` action (``N 0 R``) goes on (``/Next``) to ``N 1 R``, a
    JavaScript action: the same object number, another generation, so another object."""
    probe = _first_page_with(base)
    action, link = probe[3], probe[3] + 1
    num, gen, page, _ = _first_page_with(base, b"%d 0 R" % link)
    return append_update(base, {
        (action, 0): b"<< /S /URI /URI (https://example.org/) /Next %d 1 R >>" % action,
        (action, 1): b"<< /S /JavaScript /JS (app.alert(1)) >>",
        (link, 0): b"<< /Type /Annot /Subtype /Link /Rect [0 0 1 1] /A %d 0 R >>" % action,
        (num, gen): page,
    })


def annotation_other_generation(base: bytes) -> bytes:
    """A page listing a harmless link ``N 0 R`` and, as ``N 1 R``, a link that runs JavaScript."""
    link = _first_page_with(base)[3]
    num, gen, page, _ = _first_page_with(base, b"%d 0 R %d 1 R" % (link, link))
    return append_update(base, {
        (link, 0): b"<< /Type /Annot /Subtype /Link /Rect [0 0 1 1] "
        b"/A << /S /URI /URI (https://example.org/) >> >>",
        (link, 1): b"<< /Type /Annot /Subtype /Link /Rect [0 0 1 1] "
        b"/A << /S /JavaScript /JS (app.alert(1)) >> >>",
        (num, gen): page,
    })


def with_raw_value(base: bytes, name: str, literal: bytes) -> bytes:
    """Our form with a field's ``/V`` replaced by ``literal`` (raw PDF syntax), appended."""
    reader = PdfReader(io.BytesIO(base))
    for ref in reader.trailer["/Root"]["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/T") == name:
            body = io.BytesIO()
            clean = DictionaryObject({k: v for k, v in field.items() if k != "/V"})
            clean.write_to_stream(body)
            text = body.getvalue().rstrip()
            return append_update(base, {ref.idnum: text[:-2] + b" /V " + literal + b" >>"})
    raise KeyError(name)


def padded_upload(base: bytes, size: int, field: str = "information_shared") -> bytes:
    """The form with one text field holding enough text to make the file ``size`` bytes."""
    unit = b"Attendance notes. "
    probe = with_raw_value(base, field, b"()")
    room = size - len(probe) - 16
    text = unit * (room // len(unit)) + b" " * (room % len(unit))
    return with_raw_value(base, field, b"(" + text + b")")


def with_big_stream(base: bytes, size: int) -> bytes:
    """The form plus an incompressible stream object (what an embedded photo or font adds)."""
    reader = PdfReader(io.BytesIO(base))
    num = int(reader.trailer["/Size"])
    room = size - len(base) - 400
    data = (os.urandom(64) * 16) * (room // 1024)
    body = b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
    return append_update(base, {num: body})


def with_object_streams(pdf: bytes) -> bytes:
    """The same document rewritten by qpdf with compressed object streams (as a full save in
    Acrobat and many tools writes it)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        out = io.BytesIO()
        doc.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
        return out.getvalue()
