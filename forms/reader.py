"""Read back an untrusted, practitioner-completed decision form: the parse and its checks.

:func:`read_pdf` turns the bytes of an uploaded PDF into the record's normalised values
(:class:`ReadBack`) or refuses it with :class:`UploadRejected`, whose ``code`` says why and
whose ``message`` a practitioner can act on (no stack trace, no personal data). The service
does not call it directly: :func:`sharewise.forms.sandbox.read_upload` runs :func:`precheck`
here and then :func:`read_pdf` in a sandbox worker (this module knows nothing of the sandbox).
It uses only pypdf's public API (``PdfReader``, the ``pypdf.generic`` objects,
``apply_configuration``).

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
not_pdf        the first five bytes are not ``%PDF-`` (see below)
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

The first three are :func:`precheck`, done in the calling process before any parsing; the
rest are :func:`read_pdf`, which the service runs in :mod:`sharewise.forms.sandbox` (a worker
process under a time and memory bound). pypdf's own resource limits are tightened for the
parse (:data:`PYPDF_LIMITS`).

The header rule is deliberately stricter than PDF readers are. They tolerate bytes before
``%PDF-`` (Acrobat looks for the header anywhere in the first kilobyte; pypdf finds the objects
whatever comes first), so a ZIP archive that stores the form uncompressed, or the form behind
a byte order mark, whitespace or any other prefix, would parse as the form. The product rule
is that an upload is a PDF file, and a PDF file starts with ``%PDF-``: no PDF viewer writes
anything before it, so anything else (a UTF-8 BOM or leading whitespace added by a script
included) is refused as ``not_pdf`` before pypdf sees it.
"""

from __future__ import annotations

import logging
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
)

from sharewise.forms.spec import FieldSpec, FormSpec, TenantOptions, form_for, load_spec
from sharewise.forms.validate import Problem, describe_invalid, rule_of
from sharewise.forms.values import from_display, to_display

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HASH_KEY",
    "PDF_HEADER",
    "RECORD_KEY",
    "SCHEMA_KEY",
    "ReadBack",
    "UploadRejected",
    "expected_display",
    "precheck",
    "read_pdf",
]

SCHEMA_KEY = "/SharewiseSchema"
RECORD_KEY = "/SharewiseRecord"
HASH_KEY = "/SharewisePrefillHash"

DEFAULT_MAX_BYTES = 12 * 1024 * 1024
#: What an upload's first bytes must be (see the module docstring).
PDF_HEADER = b"%PDF-"

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
    """The cheap refusals done before any parsing: empty, too large, not a PDF (the first
    bytes are not ``%PDF-``)."""
    if not data or data.isspace():
        raise UploadRejected("empty")
    if len(data) > max_bytes:
        raise UploadRejected("too_large")
    if not data.startswith(PDF_HEADER):
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


def read_pdf(
    data: bytes, record_id: str, shown: Mapping[str, str], version: int = 1,
    tenant_options: TenantOptions = (),
) -> ReadBack:
    """Parse and check a PDF in this process (what a sandbox worker runs).

    ``shown`` is :func:`expected_display` for the record; ``version`` its schema version (an
    upload of another version's form is ``wrong_form``); ``tenant_options`` the choices its
    tenant added (:func:`sharewise.forms.spec.form_for`). Every failure is an
    :class:`UploadRejected`; nothing else escapes. The header rule of :func:`precheck` holds
    here too: pypdf never sees bytes that do not start with ``%PDF-``.
    """
    if not data.startswith(PDF_HEADER):
        raise UploadRejected("not_pdf")
    if b"%%EOF" not in data[-1024:]:
        raise UploadRejected("malformed")  # cut off: every complete PDF ends with %%EOF
    sink: list[str] = []
    token = _captured.set(sink)
    try:
        with pypdf.apply_configuration(**PYPDF_LIMITS):
            form = form_for(version, tuple(tuple(pair) for pair in tenant_options))
            return _read(data, record_id, shown, form, sink)
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


def _resolve(obj: Any) -> Any:
    """Follow indirect references (a chain that does not end is ``None``)."""
    for _ in range(8):
        if not isinstance(obj, IndirectObject):
            return obj
        obj = obj.get_object()
    return None


def _ref(ref: IndirectObject) -> tuple[int, int]:
    """What names an indirect object: its number and its generation."""
    return ref.idnum, ref.generation


def _get(d: Any, key: str) -> Any:
    if not isinstance(d, DictionaryObject):
        return None
    return _resolve(d.get(key))


def _read(
    data: bytes, record_id: str, shown: Mapping[str, str], form: FormSpec, warnings: list[str]
) -> ReadBack:
    reader = PdfReader(BytesIO(data), strict=False)
    return _check_and_read(reader, record_id, shown, form, warnings)


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
            problems.append(Problem(f.name, rule_of(f), describe_invalid(f, raw[f.name], form)))
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
    seen: set[tuple[int, int]] = set()
    while pending:
        item = pending.pop()
        if isinstance(item, IndirectObject):
            # number and generation: ``7 1 R`` is another object than ``7 0 R`` (pypdf
            # resolves both when the cross-reference lists both), so it is checked too
            if _ref(item) in seen:
                continue
            seen.add(_ref(item))
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
    annotations: set[tuple[int, int]] = set()  # number and generation, as in _check_action
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
                if _ref(ref) in annotations:
                    continue
                annotations.add(_ref(ref))
            annot = _resolve(ref)
            if isinstance(annot, DictionaryObject):
                _check_annotation(annot)
                _check_actions_of(annot)
