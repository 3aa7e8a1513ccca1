"""Fill a PDF form the way real viewers do, for the read-back tests and the browser journey.

:func:`fill_with_pdfium` drives PDFium's own form-filling layer (the code Chrome and Edge run
when a person fills a form) through pypdfium2's raw bindings: it sets up a form-fill
environment, moves the mouse to and clicks inside each widget, selects the text already there
and types the new text character by character (``FORM_OnChar``; a line break is the Return
key), clicks check boxes and radio buttons, picks drop-down entries, takes the focus away so
PDFium commits the value, and saves with ``FPDF_SaveAsCopy`` through an ``FPDF_FILEWRITE``
callback (an incremental update by default, as Chrome saves; ``incremental=False`` rewrites
the file).

:func:`fill_with_pikepdf` is the second engine: qpdf's form support through ``pikepdf.form``
(sets ``/V`` / ``/AS`` and generates appearance streams), saved as a rewritten file.

Values are what a person enters: display text for text and date fields (``"05/03/2026"``),
the export value or the shown label for a choice, ``True``/``False`` for a check box.
"""

from __future__ import annotations

import ctypes
import io
from collections.abc import Mapping
from dataclasses import dataclass

import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as c
from pikepdf.form import (
    CheckboxField,
    ChoiceField,
    DefaultAppearanceStreamGenerator,
    Form,
    RadioButtonGroup,
    TextField,
)

__all__ = [
    "ENTERED",
    "NORMALISED",
    "PdfiumFillError",
    "fill_with_pdfium",
    "fill_with_pikepdf",
    "pdfium_field_values",
]

_VK_RETURN = 0x0D

# What a practitioner enters, as they enter it (labels for choices, DD/MM/YYYY dates) ...
ENTERED: dict[str, str | bool] = {  # a complete record (a share in part without consent)
    "lawful_basis": "Public task",
    "statutory_gateway": "Children Act 1989 s47",
    "special_category": "yes",
    "special_category_condition": "DPA 2018 Schedule 1 paragraph 18",
    "subject_informed": "no",
    "not_informed_reason": "Telling the family could put the child at risk\nof further harm.",
    "advice_sought": "Yes",
    "advice_from": "Siân Ó Briain, safeguarding lead",
    "advice_summary": "Share attendance and the two notes only.",
    "identity_withheld": True,
    "consent": "not_sought",
    "consent_not_sought_reason": "Seeking consent would alert the alleged abuser.",
    "public_interest_justification": "Risk of significant harm outweighs confidentiality.",
    "risk_if_shared": "Family may disengage from school.",
    "risk_if_not_shared": "The child may suffer further injury.",
    "check_necessary": True,
    "check_proportionate": True,
    "check_relevant": True,
    "check_accurate": True,
    "check_timely": True,
    "check_secure": True,
    "information_shared": "Autumn attendance; notes of 12 and 18 November.",
    "sharing_method": "Secure email",
    "shared_on": "21/11/2026",
    "decision": "share_part",
    "decision_reasons": "Ζωή's safety comes first; Дмитрий agreed.\nShared in part only.",
    "decided_on": "2026-11-21",
    "manager_endorsement": "endorsed",
}

# ... and what the reader must give back (codes, booleans, ISO dates).
NORMALISED = {
    **ENTERED,
    "lawful_basis": "public_task",
    "advice_sought": "yes",
    "sharing_method": "secure_email",
    "shared_on": "2026-11-21",
    "decided_on": "2026-11-21",
}


class PdfiumFillError(RuntimeError):
    """The harness could not do what was asked (no such field, no such option)."""


@dataclass
class _Widget:
    page: int
    index: int
    name: str
    kind: int
    rect: tuple[float, float, float, float]
    export: str

    @property
    def centre(self) -> tuple[float, float]:
        left, bottom, right, top = self.rect
        return (left + right) / 2, (bottom + top) / 2


def _utf16(getter, *args) -> str:  # noqa: ANN001 - a PDFium "get string" function
    """Call a PDFium getter that writes a UTF-16LE string (length query first)."""
    size = getter(*args, None, 0)
    if size <= 2:
        return ""
    buffer = ctypes.create_string_buffer(size)
    getter(*args, ctypes.cast(buffer, ctypes.POINTER(c.FPDF_WCHAR)), size)
    return buffer.raw[: size - 2].decode("utf-16-le")


def _wide(text: str) -> ctypes.Array:
    units = text.encode("utf-16-le")
    array = (ctypes.c_ushort * (len(units) // 2 + 1))()
    ctypes.memmove(array, units, len(units))
    return array


class _Session:
    """A document open in PDFium with a form-fill environment and its pages loaded."""

    def __init__(self, pdf: bytes) -> None:
        self.doc = pdfium.PdfDocument(pdf)
        self.info = c.FPDF_FORMFILLINFO(version=2)
        self.form = c.FPDFDOC_InitFormFillEnvironment(self.doc.raw, ctypes.byref(self.info))
        if not self.form:
            raise PdfiumFillError("PDFium could not start its form-fill environment")
        self.pages = []
        for i in range(c.FPDF_GetPageCount(self.doc.raw)):
            page = c.FPDF_LoadPage(self.doc.raw, i)
            c.FORM_OnAfterLoadPage(page, self.form)
            self.pages.append(page)
        self.widgets = self._widgets()

    def _widgets(self) -> dict[str, list[_Widget]]:
        found: dict[str, list[_Widget]] = {}
        for p, page in enumerate(self.pages):
            for i in range(c.FPDFPage_GetAnnotCount(page)):
                annot = c.FPDFPage_GetAnnot(page, i)
                try:
                    if c.FPDFAnnot_GetSubtype(annot) != c.FPDF_ANNOT_WIDGET:
                        continue
                    name = _utf16(c.FPDFAnnot_GetFormFieldName, self.form, annot)
                    rect = c.FS_RECTF()
                    c.FPDFAnnot_GetRect(annot, ctypes.byref(rect))
                    export = _utf16(c.FPDFAnnot_GetFormFieldExportValue, self.form, annot)
                    widget = _Widget(
                        p, i, name, c.FPDFAnnot_GetFormFieldType(self.form, annot),
                        (rect.left, rect.bottom, rect.right, rect.top), export,
                    )
                    found.setdefault(name, []).append(widget)
                finally:
                    c.FPDFPage_CloseAnnot(annot)
        return found

    def click(self, widget: _Widget) -> None:
        page = self.pages[widget.page]
        x, y = widget.centre
        c.FORM_OnMouseMove(self.form, page, 0, x, y)
        c.FORM_OnLButtonDown(self.form, page, 0, x, y)
        c.FORM_OnLButtonUp(self.form, page, 0, x, y)

    def type_text(self, widget: _Widget, text: str) -> None:
        page = self.pages[widget.page]
        self.click(widget)
        c.FORM_SelectAllText(self.form, page)
        if not text:
            c.FORM_ReplaceSelection(self.form, page, _wide(""))
        units = text.replace("\r\n", "\n").encode("utf-16-le")
        for k in range(0, len(units), 2):
            unit = int.from_bytes(units[k:k + 2], "little")
            if unit == 0x0A:
                c.FORM_OnKeyDown(self.form, page, _VK_RETURN, 0)
                c.FORM_OnChar(self.form, page, _VK_RETURN, 0)
                c.FORM_OnKeyUp(self.form, page, _VK_RETURN, 0)
            else:
                c.FORM_OnChar(self.form, page, unit, 0)
        c.FORM_ForceToKillFocus(self.form)

    def checked(self, widget: _Widget) -> bool:
        annot = c.FPDFPage_GetAnnot(self.pages[widget.page], widget.index)
        try:
            return bool(c.FPDFAnnot_IsChecked(self.form, annot))
        finally:
            c.FPDFPage_CloseAnnot(annot)

    def read_only(self, widget: _Widget) -> bool:
        annot = c.FPDFPage_GetAnnot(self.pages[widget.page], widget.index)
        try:
            return bool(c.FPDFAnnot_GetFormFieldFlags(self.form, annot) & c.FPDF_FORMFLAG_READONLY)
        finally:
            c.FPDFPage_CloseAnnot(annot)

    def select_option(self, widget: _Widget, wanted: str) -> None:
        page = self.pages[widget.page]
        if self.read_only(widget):
            # a person cannot open a read-only drop-down; FORM_SetIndexSelected would
            # change it anyway (it is not a user action), so only click, as a person would
            self.click(widget)
            c.FORM_ForceToKillFocus(self.form)
            return
        annot = c.FPDFPage_GetAnnot(page, widget.index)
        try:
            labels = [
                _utf16(c.FPDFAnnot_GetOptionLabel, self.form, annot, i)
                for i in range(c.FPDFAnnot_GetOptionCount(self.form, annot))
            ]
            if wanted not in labels:
                raise PdfiumFillError(f"{widget.name}: no option {wanted!r} in {labels}")
            c.FORM_SetFocusedAnnot(self.form, annot)
            if not c.FORM_SetIndexSelected(self.form, page, labels.index(wanted), True):
                raise PdfiumFillError(f"{widget.name}: PDFium refused the selection")
        finally:
            c.FPDFPage_CloseAnnot(annot)
        c.FORM_ForceToKillFocus(self.form)

    def save(self, flags: int) -> bytes:
        out = io.BytesIO()

        def write_block(_this, data, size):  # noqa: ANN001, ANN202 - ctypes callback
            out.write(ctypes.string_at(data, size))
            return 1

        writer = c.FPDF_FILEWRITE(version=1)
        writer.WriteBlock = type(writer.WriteBlock)(write_block)
        if not c.FPDF_SaveAsCopy(self.doc.raw, ctypes.byref(writer), flags):
            raise PdfiumFillError("PDFium could not save the document")
        return out.getvalue()

    def close(self) -> None:
        for page in self.pages:
            c.FORM_OnBeforeClosePage(page, self.form)
            c.FPDF_ClosePage(page)
        c.FPDFDOC_ExitFormFillEnvironment(self.form)
        self.doc.close()


def _label_map(pdf: bytes) -> dict[str, dict[str, str]]:
    """Export value -> shown label for every choice of the form ``pdf`` is (its schema
    version from ``/SharewiseSchema``; a person picks labels)."""
    import io

    from pypdf import PdfReader

    from sharewise.forms.spec import SPEC_PATHS, load_spec

    schema = (PdfReader(io.BytesIO(pdf)).metadata or {}).get("/SharewiseSchema")
    form = next((load_spec(v) for v in SPEC_PATHS if load_spec(v).schema == schema),
                load_spec(1))
    return {f.name: {o.value: o.label for o in f.options} for f in form.fields}


def fill_with_pdfium(
    pdf: bytes, values: Mapping[str, str | bool], *, incremental: bool = True
) -> bytes:
    """Fill ``values`` into ``pdf`` through PDFium's form-fill API and return the saved file.

    Text is typed into the field (replacing what is there); a check box is clicked when its
    state differs from the wanted ``bool``; a radio group gets a click on the button whose
    export value (or label) is the value; a drop-down entry is picked by label (an export
    value is translated through the spec). Read-only fields are clicked and typed into like
    any other: PDFium ignores it, as a viewer does (a read-only drop-down is only clicked:
    PDFium's programmatic ``FORM_SetIndexSelected`` would bypass the read-only flag).
    """
    labels = _label_map(pdf)
    session = _Session(pdf)
    try:
        for name, value in values.items():
            widgets = session.widgets.get(name)
            if not widgets:
                raise PdfiumFillError(f"no field {name!r} in the document")
            first = widgets[0]
            if first.kind == c.FPDF_FORMFIELD_CHECKBOX:
                if session.checked(first) != bool(value):
                    session.click(first)
                    c.FORM_ForceToKillFocus(session.form)
            elif first.kind == c.FPDF_FORMFIELD_RADIOBUTTON:
                wanted = {str(value), *(
                    v for v, label in labels.get(name, {}).items() if label == value
                )}
                target = next((w for w in widgets if w.export in wanted), None)
                if target is None:
                    raise PdfiumFillError(
                        f"{name}: no button {value!r} in {[w.export for w in widgets]}"
                    )
                session.click(target)
                c.FORM_ForceToKillFocus(session.form)
            elif first.kind in (c.FPDF_FORMFIELD_COMBOBOX, c.FPDF_FORMFIELD_LISTBOX):
                session.select_option(first, labels.get(name, {}).get(str(value), str(value)))
            elif first.kind == c.FPDF_FORMFIELD_TEXTFIELD:
                session.type_text(first, str(value))
            else:
                raise PdfiumFillError(f"{name}: field type {first.kind} is not supported")
        return session.save(c.FPDF_INCREMENTAL if incremental else c.FPDF_NO_INCREMENTAL)
    finally:
        session.close()


def pdfium_field_values(pdf: bytes) -> dict[str, str | bool]:
    """What PDFium itself shows for each field (text value, or checked state of a button)."""
    session = _Session(pdf)
    try:
        out: dict[str, str | bool] = {}
        for name, widgets in session.widgets.items():
            first = widgets[0]
            if first.kind in (c.FPDF_FORMFIELD_CHECKBOX, c.FPDF_FORMFIELD_RADIOBUTTON):
                on = [w.export for w in widgets if session.checked(w)]
                out[name] = on[0] if first.kind == c.FPDF_FORMFIELD_RADIOBUTTON and on else (
                    bool(on) if first.kind == c.FPDF_FORMFIELD_CHECKBOX else ""
                )
                continue
            annot = c.FPDFPage_GetAnnot(session.pages[first.page], first.index)
            try:
                out[name] = _utf16(c.FPDFAnnot_GetFormFieldValue, session.form, annot)
            finally:
                c.FPDFPage_CloseAnnot(annot)
        return out
    finally:
        session.close()


def fill_with_pikepdf(pdf: bytes, values: Mapping[str, str | bool]) -> bytes:
    """Fill ``values`` with qpdf's form support (pikepdf.form) and save a rewritten file."""
    labels = _label_map(pdf)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        form = Form(doc, generate_appearances=DefaultAppearanceStreamGenerator)
        for name, value in values.items():
            field = form[name]
            if isinstance(field, CheckboxField):
                field.checked = bool(value)
            elif isinstance(field, RadioButtonGroup):
                wanted = next((v for v, label in labels.get(name, {}).items()
                               if value in (v, label)), str(value))
                field.value = pikepdf.Name("/" + wanted)
            elif isinstance(field, ChoiceField):
                field.value = next((v for v, label in labels.get(name, {}).items()
                                    if value in (v, label)), str(value))
            elif isinstance(field, TextField):
                field.value = str(value)
            else:
                raise PdfiumFillError(f"{name}: unsupported field {type(field).__name__}")
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
