"""Read back an untrusted, practitioner-completed decision form.

``read_upload(data, record_id=..., expected=...)`` turns the bytes of an uploaded PDF into the
record's normalised values (:class:`ReadBack`) or refuses it with :class:`UploadRejected`,
whose ``code`` says why and whose ``message`` a practitioner can act on (no stack trace, no
personal data).

Only the fields the spec names are read (``/AcroForm /Fields`` and their ``/Kids``; field names
are the flat spec names): text ``/V`` (pypdf decodes PDFDocEncoding and UTF-16 with a BOM),
combo ``/V`` (the export value; a shown label is mapped back to its value), radio groups (the
parent's ``/V`` name, mapped through ``/Opt`` when the states are indices, else the widget
whose ``/AS`` is not ``/Off``), checkboxes (``/V``, else ``/AS``, not ``/Off``). Whatever a
viewer did on save, an incremental update appended by PDFium or a rewritten file, pypdf reads
the newest revision. Each value goes through :func:`forms.values.from_display`; a value that
cannot be understood (``31/02/2026`` in a date field) becomes ``None`` plus a
:class:`~sharewise.forms.validate.Problem` with the field's rule.

Refusals, checked in this order:

============== ==============================================================================
code           when
============== ==============================================================================
empty          zero bytes (or only whitespace)
too_large      more than ``max_bytes`` (12 MB by default)
not_pdf        no ``%PDF-`` header in the first 1024 bytes
malformed      pypdf cannot parse it (truncated, broken cross-reference, nonsense objects)
too_complex    a parser limit was hit (decompression bomb, huge or deeply nested trees, a
               loop) or the sandbox's time or memory bound ended the parse
encrypted      the trailer has ``/Encrypt``, even with an empty user password
xfa            ``/AcroForm /XFA`` is present (an XFA form is not our form and can run scripts)
active_content anything that can run or load something: ``/Names /JavaScript``; an action
               (``/OpenAction``, any ``/AA`` entry, an annotation's or field's ``/A``, an
               outline item's ``/A``, including ``/Next`` chains) of a type other than the
               harmless ``/GoTo``, ``/Named``, ``/Thread`` and ``/URI`` (so ``/JavaScript``,
               ``/Launch``, ``/ImportData``, ``/SubmitForm``, ``/ResetForm``, ``/GoToR``,
               ``/GoToE``, ``/Rendition``, ``/RichMediaExecute``, ``/Sound``, ``/Movie`` and
               anything unknown), any action carrying ``/JS``; embedded files
               (``/Names /EmbeddedFiles``, ``/FileAttachment`` annotations) and media
               annotations (``/Screen``, ``/Movie``, ``/Sound``, ``/RichMedia``, ``/3D``)
wrong_form     the document metadata names another schema, or any spec field is missing
               (not our form, or its fields were flattened away, e.g. by printing to PDF)
wrong_record   our form, but ``/SharewiseRecord`` or the read-only ``record_id`` field names
               another record
tampered       a read-only field's text differs from what prefill wrote
               (:func:`sharewise.forms.values.to_display` of the record's ``expected`` value)
============== ==============================================================================

The first three are checked in the caller; parsing runs in :mod:`forms.sandbox` (a warm worker
process under a time and memory bound) unless ``isolate=False``. pypdf's own resource limits
are tightened for the parse (:data:`PYPDF_LIMITS`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pypdf
from pypdf import PdfReader
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    StreamObject,
    read_object,
)

from sharewise.forms.spec import FieldSpec, FormSpec, load_spec
from sharewise.forms.validate import Problem, describe_invalid, rule_of
from sharewise.forms.values import from_display, to_display

__all__ = [
    "HASH_KEY",
    "RECORD_KEY",
    "SCHEMA_KEY",
    "ReadBack",
    "UploadRejected",
    "expected_display",
    "read_pdf",
    "read_upload",
]

SCHEMA_KEY = "/SharewiseSchema"
RECORD_KEY = "/SharewiseRecord"
HASH_KEY = "/SharewisePrefillHash"

DEFAULT_MAX_BYTES = 12 * 1024 * 1024

#: pypdf limits applied while parsing an upload (``pypdf.apply_configuration``, scoped to the
#: parse). The decision form needs a tiny fraction of each.
PYPDF_LIMITS: dict[str, int] = {
    "maximum_declared_stream_length": 16_000_000,
    "zlib_maximum_output_length": 32_000_000,
    "lzw_maximum_output_length": 32_000_000,
    "run_length_maximum_output_length": 32_000_000,
    "brotli_maximum_output_length": 32_000_000,
    "array_based_stream_maximum_output_length": 32_000_000,
    "stream_decoding_work_maximum_length": 64_000_000,
    "array_maximum_element_count": 50_000,
    "dictionary_maximum_element_count": 10_000,
    "form_fields_maximum_entries": 5_000,
    "form_fields_maximum_depth": 16,
    "page_tree_maximum_entries": 2_000,
    "page_tree_maximum_depth": 16,
    "outline_maximum_entries": 2_000,
    "outline_maximum_depth": 16,
}

# Our own walk limits (the form has 3 pages and about 60 fields).
MAX_PAGES = 200
MAX_NODES = 20_000
MAX_DEPTH = 16
_SAFE_ACTIONS = frozenset({"/GoTo", "/Named", "/Thread", "/URI"})
_MEDIA_ANNOTS = frozenset({"/Screen", "/Movie", "/Sound", "/RichMedia", "/3D"})

_MESSAGES = {
    "empty": "The file you uploaded is empty. Please upload the completed decision form.",
    "too_large": "The file is too large to be the decision form. Please upload the form you "
    "downloaded, completed and saved in a PDF reader.",
    "not_pdf": "The file is not a PDF. Please upload the decision form as a PDF.",
    "malformed": "The PDF could not be read; it may be damaged or only partly uploaded. "
    "Please save the form again in your PDF reader and upload it again.",
    "encrypted": "The PDF is password-protected or encrypted, so it cannot be read. Please "
    "save it without a password or security settings and upload it again.",
    "xfa": "This PDF uses a dynamic (XFA) form, which is not the Sharewise decision form. "
    "Please upload the form you downloaded from Sharewise.",
    "active_content": "The PDF contains scripts, actions or attached files, which are not "
    "accepted. Please upload the decision form as downloaded, completed in a PDF reader.",
    "attachments": "The PDF contains attached files, which are not accepted. Please upload "
    "the decision form without attachments.",
    "wrong_form": "This is not the Sharewise decision form for this request, or its fillable "
    "fields were removed (for example by printing it to PDF). Please upload the form you "
    "downloaded, completed and saved in a PDF reader.",
    "wrong_record": "This decision form belongs to a different request. Please upload the form "
    "you downloaded from this request's link.",
    "tampered": "Details that cannot be changed on the form (the case details at the top) "
    "were changed. Please download a fresh form and complete it again; if the case details "
    "are wrong, correct them in the case system.",
    "too_complex": "The PDF is too complex to be the decision form and could not be read in "
    "time. Please upload the form you downloaded, completed and saved in a PDF reader.",
}


class UploadRejected(Exception):
    """An upload that is not a readable decision form for this record.

    ``code`` is one of the codes in the module docstring; ``message`` is plain English for the
    practitioner and carries no personal data.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or _MESSAGES[code]
        super().__init__(code, self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (UploadRejected, (self.code, self.message))

    @classmethod
    def checked(cls, code: Any, message: Any) -> UploadRejected:
        """A refusal rebuilt from another process's report, trusting only known text: an
        unknown code becomes ``too_complex``, a message that is not one of ours the code's
        own."""
        if not isinstance(code, str) or code not in _MESSAGES:
            return cls("too_complex")
        return cls(code, message if message in _MESSAGES.values() else None)


@dataclass(frozen=True)
class ReadBack:
    """What an accepted upload holds."""

    values: dict[str, Any]
    record_id: str | None
    prefill_hash: str | None
    problems: tuple[Problem, ...]


# pypdf reports some structural damage it recovers from only as log warnings; the ones that
# mean the file is broken beyond what a PDF viewer writes are refusals here.
_FATAL_WARNINGS = ("Circular xref chain",)
_captured: ContextVar[list[str] | None] = ContextVar("sharewise_pypdf_warnings", default=None)


class _WarningCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sink = _captured.get()
        if sink is not None:
            sink.append(record.getMessage())


logging.getLogger("pypdf").addHandler(_WarningCapture(logging.WARNING))


# ------------------------------------------------------------------ entry points


def precheck(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """The cheap refusals done before any parsing: empty, too large, not a PDF."""
    if not data or data.isspace():
        raise UploadRejected("empty")
    if len(data) > max_bytes:
        raise UploadRejected("too_large")
    if b"%PDF-" not in data[:1024]:
        raise UploadRejected("not_pdf")


def expected_display(
    record_id: str, expected: Mapping[str, Any], form: FormSpec | None = None
) -> dict[str, str]:
    """The text prefill wrote into each read-only field, from the record's values.

    Raises ``ValueError`` when ``expected`` holds a value the field cannot take (a caller bug,
    not an upload problem).
    """
    form = form or load_spec()
    shown: dict[str, str] = {}
    for f in form.read_only_fields:
        value = record_id if f.name == "record_id" else expected.get(f.name)
        shown[f.name] = _canon(to_display(f, value))
    return shown


def read_upload(
    data: bytes,
    *,
    record_id: str,
    expected: Mapping[str, Any],
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 5.0,
    isolate: bool = True,
) -> ReadBack:
    """Read an uploaded decision form for ``record_id`` or raise :class:`UploadRejected`.

    ``expected`` is the record's normalised prefilled values (read-only fields are compared
    with them). With ``isolate=True`` (the default) the parse runs in a sandbox worker bounded
    by ``timeout`` seconds and a memory limit; ``isolate=False`` parses in this process
    (benchmarks, or a caller that is already sandboxed) and cannot enforce ``timeout``.
    """
    precheck(data, max_bytes)
    shown = expected_display(record_id, expected)
    if isolate:
        from sharewise.forms import sandbox

        return sandbox.read(data, record_id, shown, timeout=timeout)
    return read_pdf(data, record_id, shown)


def read_pdf(data: bytes, record_id: str, shown: Mapping[str, str]) -> ReadBack:
    """Parse and check a PDF in this process (what the sandbox worker runs).

    ``shown`` is :func:`expected_display` for the record. Every failure is an
    :class:`UploadRejected`; nothing else escapes.
    """
    if b"%%EOF" not in data[-1024:]:
        raise UploadRejected("malformed")  # cut off: every complete PDF ends with %%EOF
    sink: list[str] = []
    token = _captured.set(sink)
    try:
        with pypdf.apply_configuration(**PYPDF_LIMITS):
            return _read(data, record_id, shown, load_spec(), sink)
    except UploadRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on broken input
        # pypdf wraps a MemoryError or a limit it hit in its own errors: look down the chain
        raise UploadRejected("too_complex" if _exhausted(exc) else "malformed") from None
    finally:
        _captured.reset(token)


# ------------------------------------------------------------------ the parse


def _exhausted(exc: BaseException) -> bool:
    """Whether an error was caused by a resource bound (memory, recursion, a pypdf limit)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 20:
        if isinstance(current, LimitReachedError | RecursionError | MemoryError):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


# The document being read: references are resolved against it, not against the ``pdf`` an
# ``IndirectObject`` carries, because reused dictionaries (below) are shared between uploads.
_document: ContextVar[PdfReader | None] = ContextVar("sharewise_pdf_document", default=None)


def _resolve(obj: Any) -> Any:
    """Follow indirect references (a self-reference ends as ``None``)."""
    document = _document.get()
    for _ in range(8):
        if not isinstance(obj, IndirectObject):
            return obj
        obj = document.get_object(obj) if document is not None else obj.get_object()
    return None


def _get(d: Any, key: str) -> Any:
    if not isinstance(d, DictionaryObject):
        return None
    return _resolve(d.get(key))


# ------------------------------------------------------------------ parsed-object reuse
#
# Parsing object dictionaries is most of the cost of reading the form with pypdf (about 0.1 ms
# each, and a read touches about 90). Uploads of the form are mostly the same objects over
# and over: the template's, and the ones a given viewer rewrites the same way for every
# record. So each process keeps the parse results of plain (non-stream) object dictionaries
# keyed by the exact bytes between "N G obj" and "endobj", and a new upload whose object has
# byte-identical text gets that dictionary instead of a fresh parse. Identical bytes parse
# identically (encrypted files never take part), so nothing is trusted that was not checked:
# the shared, read-only dictionary goes through every check a fresh parse would (its
# references are resolved against the upload being read: see ``_resolve``). An entry is only
# stored when the parse consumed exactly the text up to "endobj" (so a string containing
# "endobj" cannot make two different objects share a key).
#
# What is kept is bounded and holds no form text: a dictionary whose ``/V`` is a value (text,
# an array) rather than a name or a reference is never stored, so field values of one upload
# are not kept for the next; and the stored text is capped in total bytes (parsed objects take
# at most about 45 times their text in memory, so the cache stays under about 50 MB even when
# an upload is built to fill it, well inside a sandbox worker's bound). When full it starts
# afresh.

_OBJECT_TEXT_LIMIT = 2 * 1024  # the form's dictionaries are under 1.5 KB
_OBJECT_CACHE_BYTES = 1024 * 1024  # about 1,000 typical dictionaries; worst case about 50 MB
_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+obj\b")
# a header exactly where the xref points, then the whitespace pypdf would skip as well
_WS = rb"[ \r\n\t\f\x00]"
_PLAIN_HEADER = re.compile(rb"(\d{1,10})" + _WS + rb"+(\d{1,10})" + _WS + rb"+obj" + _WS + b"*")


class _ObjectCache:
    """Parsed plain dictionaries by their exact text, bounded in total text bytes."""

    def __init__(self, limit: int = _OBJECT_CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._items: dict[bytes, DictionaryObject] = {}

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[DictionaryObject]:
        """The stored dictionaries (for tests)."""
        return list(self._items.values())

    def get(self, text: bytes) -> DictionaryObject | None:
        """The dictionary parsed from exactly ``text`` before, if kept."""
        return self._items.get(text)

    def put(self, text: bytes, obj: Any) -> None:
        """Keep ``obj`` (parsed from all of ``text``) if it may be shared between uploads."""
        if type(obj) is not DictionaryObject or len(text) > _OBJECT_TEXT_LIMIT:
            return
        value = dict.get(obj, "/V")
        if value is not None and not isinstance(value, NameObject | IndirectObject):
            return  # a field value: never kept beyond the upload it came with
        if self.size + len(text) > self.limit:
            self.clear()
        self._items[text] = _detached(obj)  # keeps no upload alive
        self.size += len(text)

    def clear(self) -> None:
        """Forget everything."""
        self._items = {}
        self.size = 0


_parsed_objects = _ObjectCache()


def _detached(obj: Any) -> Any:
    """A copy of a parsed object whose indirect references point into no document."""
    if isinstance(obj, IndirectObject):
        return IndirectObject(obj.idnum, obj.generation, None)  # type: ignore[arg-type]
    if isinstance(obj, DictionaryObject):
        copy = DictionaryObject()
        for key, value in dict.items(obj):
            dict.__setitem__(copy, key, _detached(value))
        return copy
    if isinstance(obj, ArrayObject):
        return ArrayObject([_detached(value) for value in obj])
    return obj  # names, strings, numbers, booleans, null: never modified by the reader


class _Reader(PdfReader):
    """pypdf's reader with parsed-object reuse for plain, unencrypted object dictionaries.

    It also reads a well-formed object header (``12 0 obj``) with one regular expression
    instead of pypdf's byte-by-byte loop (pypdf checks the header of every cross-reference
    entry when not strict); anything unusual goes to pypdf's own code.
    """

    def read_object_header(self, stream: Any) -> tuple[int, int]:
        data = getattr(self, "_data", None)
        if data is not None and stream is self._source:
            found = _PLAIN_HEADER.match(data, stream.tell())
            if found is not None:
                stream.seek(found.end(), 0)
                return int(found[1]), int(found[2])
        return super().read_object_header(stream)

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._source = BytesIO(data)
        self._reuse = False
        super().__init__(self._source, strict=False)
        self._reuse = "/Encrypt" not in self.trailer
        if self._reuse and self.xref_objStm:
            self._prepare_object_streams()

    def _prepare_object_streams(self) -> None:
        """Resolve compressed objects (in ``/ObjStm`` streams) through the reuse cache too.

        pypdf parses every object of an object stream when one is asked for; this does the
        same up front, but takes a dictionary whose text it has seen from the cache and
        parses (with pypdf's own ``read_object``) only the others. Anything unusual (bad
        offsets, an object that does not parse or does not end at the next offset) is left
        to pypdf, which parses it when it is asked for.
        """
        members: dict[int, set[int]] = {}
        for num, (stream_num, _index) in self.xref_objStm.items():
            members.setdefault(int(stream_num), set()).add(int(num))
        budget = MAX_NODES
        for stream_num, numbers in members.items():
            stream = super().get_object(IndirectObject(stream_num, 0, self))
            first = stream.get("/First") if isinstance(stream, StreamObject) else None
            if not isinstance(first, int) or first < 0:
                continue
            data = stream.get_data()
            head = data[:first].split()
            if len(head) % 2 or not all(part.isdigit() for part in head):
                continue
            pairs = [(int(head[i]), int(head[i + 1])) for i in range(0, len(head), 2)]
            offsets = [offset for _, offset in pairs]
            if offsets != sorted(set(offsets)) or (offsets and first + offsets[-1] > len(data)):
                continue
            for i, (num, offset) in enumerate(pairs):
                if num not in numbers or (0, num) in self.resolved_objects:
                    continue
                budget -= 1
                if budget < 0:
                    return
                start = first + offset
                end = first + pairs[i + 1][1] if i + 1 < len(pairs) else len(data)
                text = data[start:end]
                if len(text) > _OBJECT_TEXT_LIMIT:
                    continue
                known = _parsed_objects.get(text)
                if known is not None:
                    self.resolved_objects[(0, num)] = known  # shared: never modified
                    continue
                buffer = BytesIO(text)
                try:
                    obj = read_object(buffer, self)
                except Exception:  # noqa: BLE001, S112 - left to pypdf, which parses it when asked
                    continue
                if type(obj) is not DictionaryObject or text[buffer.tell():].strip():
                    continue
                self.resolved_objects[(0, num)] = obj
                _parsed_objects.put(text, obj)

    def get_object(self, indirect_reference: int | IndirectObject) -> Any:
        if not self._reuse:
            return super().get_object(indirect_reference)
        if isinstance(indirect_reference, int):
            indirect_reference = IndirectObject(indirect_reference, 0, self)
        gen, num = indirect_reference.generation, indirect_reference.idnum
        if (gen, num) in self.resolved_objects or (gen == 0 and num in self.xref_objStm):
            return super().get_object(indirect_reference)
        start = self.xref.get(gen, {}).get(num)
        header = _HEADER.match(self._data, start) if isinstance(start, int) else None
        if header is None or int(header[1]) != num or int(header[2]) != gen:
            return super().get_object(indirect_reference)
        end = self._data.find(b"endobj", header.end(), header.end() + _OBJECT_TEXT_LIMIT)
        if end < 0:
            return super().get_object(indirect_reference)
        text = self._data[header.end():end]
        known = _parsed_objects.get(text)
        if known is not None:
            self.resolved_objects[(gen, num)] = known  # shared: never modified
            return known
        obj = super().get_object(indirect_reference)
        stop = self.stream.tell()
        if stop <= end and not self._data[stop:end].strip():
            _parsed_objects.put(text, obj)
        return obj


def _read(
    data: bytes, record_id: str, shown: Mapping[str, str], form: FormSpec, warnings: list[str]
) -> ReadBack:
    reader = _Reader(data)
    token = _document.set(reader)
    try:
        return _check_and_read(reader, record_id, shown, form, warnings)
    finally:
        _document.reset(token)


def _check_and_read(
    reader: PdfReader,
    record_id: str,
    shown: Mapping[str, str],
    form: FormSpec,
    warnings: list[str],
) -> ReadBack:
    if any(w.startswith(_FATAL_WARNINGS) for w in warnings):
        raise UploadRejected("malformed")
    trailer = reader.trailer
    if "/Encrypt" in trailer or reader.is_encrypted:
        raise UploadRejected("encrypted")
    root = _get(trailer, "/Root")
    if not isinstance(root, DictionaryObject):
        raise UploadRejected("malformed")
    acro = _get(root, "/AcroForm")
    if isinstance(acro, DictionaryObject) and "/XFA" in acro:
        raise UploadRejected("xfa")

    _check_document_actions(root)
    nodes = _walk_fields(acro, form)
    _check_pages(root)

    info = _get(trailer, "/Info")
    schema = _text(_get(info, SCHEMA_KEY))
    meta_record = _text(_get(info, RECORD_KEY))
    prefill_hash = _text(_get(info, HASH_KEY))
    if schema is not None and schema != form.schema:
        raise UploadRejected("wrong_form")
    if any(name not in nodes for name in form.names):
        raise UploadRejected("wrong_form")

    raw = {f.name: _raw_value(f, nodes[f.name]) for f in form.fields}
    field_record = _canon(raw.get("record_id"))
    if meta_record is None and not field_record:
        raise UploadRejected("wrong_form")  # the blank template, not a record's form
    if meta_record is not None and meta_record != record_id:
        raise UploadRejected("wrong_record")
    if field_record != record_id:
        raise UploadRejected("wrong_record")
    for name, text in shown.items():
        if _canon(raw.get(name)) != text:
            raise UploadRejected("tampered")

    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for f in form.fields:
        try:
            values[f.name] = from_display(f, raw[f.name])
        except ValueError:
            values[f.name] = None
            problems.append(Problem(f.name, rule_of(f), describe_invalid(f, raw[f.name])))
    return ReadBack(
        values=values,
        record_id=meta_record or values.get("record_id"),
        prefill_hash=prefill_hash,
        problems=tuple(problems),
    )


def _canon(value: Any) -> str:
    """One comparable text for a field's shown value (empty and unticked are ``""``)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "Yes"
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def _text(obj: Any) -> str | None:
    """A PDF string or name as ``str`` (``None`` for anything else)."""
    if isinstance(obj, NameObject):
        return str(obj)[1:]
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    return None


# ------------------------------------------------------------------ fields


def _children(node: DictionaryObject) -> Iterator[tuple[int | None, Any]]:
    kids = _get(node, "/Kids")
    if not isinstance(kids, ArrayObject):
        return
    for kid in kids:
        key = kid.idnum if isinstance(kid, IndirectObject) else None
        yield key, _resolve(kid)


def _walk_fields(acro: Any, form: FormSpec) -> dict[str, DictionaryObject]:
    """Spec name -> field dictionary; checks every node's actions on the way."""
    found: dict[str, DictionaryObject] = {}
    top = _get(acro, "/Fields")
    if not isinstance(top, ArrayObject):
        return found
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = []
    for item in reversed(top):
        stack.append((item, "", 0))
    count = 0
    while stack:
        item, parent, depth = stack.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                raise UploadRejected("malformed")  # a field listed twice, or a loop
            seen.add(item.idnum)
        node = _resolve(item)
        if not isinstance(node, DictionaryObject):
            continue
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            raise UploadRejected("too_complex")
        _check_actions_of(node)
        _check_annotation(node)
        part = _text(_get(node, "/T"))
        name = f"{parent}.{part}" if parent and part is not None else (part or parent)
        if part is not None and name in form and name not in found:
            found[name] = node
        kids = _get(node, "/Kids")
        if isinstance(kids, ArrayObject):
            for kid in reversed(kids):
                stack.append((kid, name, depth + 1))
    return found


def _widgets(node: DictionaryObject) -> list[DictionaryObject]:
    kids = [k for _, k in _children(node) if isinstance(k, DictionaryObject)]
    return kids or [node]


def _state(obj: Any) -> str | None:
    """An appearance state / checkbox value: ``None`` for absent or ``/Off``."""
    text = _text(obj)
    if text is None or text in ("", "Off"):
        return None
    return text


def _raw_value(field: FieldSpec, node: DictionaryObject) -> str | bool | None:
    """What the PDF holds for a field, as :func:`sharewise.forms.values.from_display` expects it."""
    value = _get(node, "/V")
    if field.type == "checkbox":
        if value is not None:
            return _state(value) is not None
        return any(_state(_get(w, "/AS")) is not None for w in _widgets(node))
    if field.type == "choice" and field.widget == "radio":
        state = _state(value) if value is not None else None
        if state is None and value is None:
            for widget in _widgets(node):
                state = _state(_get(widget, "/AS"))
                if state is not None:
                    break
        if state is None:
            return None
        opts = _get(node, "/Opt")
        if isinstance(opts, ArrayObject) and state.isdigit() and int(state) < len(opts):
            state = _text(_resolve(opts[int(state)])) or state
        return _choice_value(field, state)
    if isinstance(value, ArrayObject):  # a multi-select list: take the first choice
        value = _resolve(value[0]) if value else None
    if isinstance(value, StreamObject):  # a text stream value (allowed, rarely used)
        value = value.get_data()[:65536].decode("utf-8", "replace")
    text = _text(value)
    if text is None:
        return None
    if field.type == "choice":
        return _choice_value(field, text)
    return text


def _choice_value(field: FieldSpec, text: str) -> str:
    """A choice's export value; a viewer that stored the shown label gets it mapped back."""
    stripped = text.strip()
    if stripped in field.option_values:
        return stripped
    for option in field.options:
        if option.label == stripped:
            return option.value
    return stripped


# ------------------------------------------------------------------ active content


def _check_action(action: Any, budget: list[int]) -> None:
    """Refuse an action (and its ``/Next`` chain) that is not on the harmless list."""
    pending = [action]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                continue
            seen.add(item.idnum)
        obj = _resolve(item)
        budget[0] -= 1
        if budget[0] < 0:
            raise UploadRejected("too_complex")
        if isinstance(obj, ArrayObject):
            pending.extend(obj)
            continue
        if not isinstance(obj, DictionaryObject):
            continue
        kind = _get(obj, "/S")
        if kind not in _SAFE_ACTIONS or "/JS" in obj:
            raise UploadRejected("active_content")
        nxt = obj.get("/Next")
        if nxt is not None:
            pending.append(nxt)


def _check_actions_of(d: DictionaryObject) -> None:
    budget = [1000]
    action = d.get("/A")
    if action is not None:
        _check_action(action, budget)
    aa = _get(d, "/AA")
    if isinstance(aa, DictionaryObject):
        for key in list(aa.keys()):
            _check_action(aa.get(key), budget)


def _check_annotation(d: DictionaryObject) -> None:
    subtype = _get(d, "/Subtype")
    if subtype == "/FileAttachment":
        raise UploadRejected("active_content", _MESSAGES["attachments"])
    if subtype in _MEDIA_ANNOTS:
        raise UploadRejected("active_content")


def _check_document_actions(root: DictionaryObject) -> None:
    names = _get(root, "/Names")
    if isinstance(names, DictionaryObject):
        if "/JavaScript" in names:
            raise UploadRejected("active_content")
        if "/EmbeddedFiles" in names:
            raise UploadRejected("active_content", _MESSAGES["attachments"])
    opening = _resolve(root.get("/OpenAction"))
    if isinstance(opening, DictionaryObject):  # an array is a plain destination
        _check_action(opening, [1000])
    _check_actions_of(root)
    outline = _get(_get(root, "/Outlines"), "/First")
    seen: set[int] = set()
    stack = [outline]
    while stack:
        item = stack.pop()
        if not isinstance(item, DictionaryObject) or id(item) in seen:
            continue
        seen.add(id(item))
        if len(seen) > 2000:
            raise UploadRejected("too_complex")
        _check_actions_of(item)
        stack.extend([_get(item, "/Next"), _get(item, "/First")])


def _check_pages(root: DictionaryObject) -> None:
    """Walk the page tree (bounded, loop-safe): page actions and annotations."""
    seen: set[int] = set()
    annotations: set[int] = set()
    stack: list[tuple[Any, int]] = [(root.get("/Pages"), 0)]
    pages = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                raise UploadRejected("malformed")  # a page tree that loops
            seen.add(item.idnum)
        node = _resolve(item)
        if not isinstance(node, DictionaryObject):
            continue
        if depth > MAX_DEPTH or len(seen) > MAX_NODES:
            raise UploadRejected("too_complex")
        kids = _get(node, "/Kids")
        if isinstance(kids, ArrayObject):
            stack.extend((kid, depth + 1) for kid in kids)
            continue
        pages += 1
        if pages > MAX_PAGES:
            raise UploadRejected("too_complex")
        _check_actions_of(node)
        annots = _get(node, "/Annots")
        if not isinstance(annots, ArrayObject):
            continue
        for ref in annots:
            if isinstance(ref, IndirectObject):
                if ref.idnum in annotations:
                    continue
                annotations.add(ref.idnum)
            annot = _resolve(ref)
            if isinstance(annot, DictionaryObject):
                _check_annotation(annot)
                _check_actions_of(annot)
