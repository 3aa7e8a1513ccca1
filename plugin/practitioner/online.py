"""The online form: the decision record completed in the browser, as an alternative to the PDF.

Routes (on the practitioner blueprint, opened by the page's own link, purpose ``form``):

``GET /form/<token>/online``
    The form, generated from the record's field spec (:mod:`sharewise.forms.webform`): the
    case details as text, then one section per golden rule with labelled controls. It holds
    what the practitioner's last version held (an upload or an online save), else the prefill,
    and shows that version's problems beside their fields, with any text it could not read
    as it was typed. Plain HTML: no script is needed or
    sent (the pages' Content-Security-Policy allows none).
``POST /form/<token>/online``
    ``action=draft-<n>`` saves a draft from section ``n``'s button; ``action=submit`` submits;
    any other ``action`` (or none) is ``400`` and saves nothing.
    Either way the whole form is saved as the record's next version
    (:func:`sharewise.plugin.uploads.services.save_online`). A draft is checked but never
    completes the record; a submission is handled as an upload of a PDF holding those values
    (complete: final PDF and post-back; else incomplete). The answer is the form again with
    what was saved, a summary of the problems at the top linking to each field, grouped by
    golden rule, or, once complete, the record's page. The same save again (a refreshed page,
    a second click) adds no version: it answers as the first did.

Switching is free both ways: the PDF download after an online save is the form holding its
values (:func:`sharewise.plugin.uploads.services.online_pdf`), and this form after an upload
holds what the uploaded PDF held.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request
from werkzeug.exceptions import BadRequest

from sharewise.forms.webform import read_web_form, web_form
from sharewise.plugin.db import session_scope
from sharewise.plugin.practitioner.views import (
    ResultModel,
    _accessed,
    _html,
    _page_model,
    _record_for,
    _reload,
    _render_record,
    _result_model,
    _standing,
    _tenant_name,
    bp,
)
from sharewise.plugin.records.models import CANCELLED, COMPLETE, Record
from sharewise.plugin.uploads.services import (
    latest_readable,
    save_online,
    version_values,
)

#: the submit button's value; a section's draft button is ``draft-<section number>``
SUBMIT = "submit"


def _current(record: Record) -> tuple[dict[str, Any], list[dict[str, Any]], ResultModel | None,
                                      dict[str, str] | None]:
    """The values the form starts from, the problems to show, the standing notice and the
    texts the last save could not read (shown again as typed)."""
    with session_scope(readonly=True) as session:
        latest = latest_readable(session, record)
    if latest is None:
        return dict(record.prefill or {}), [], None, None
    return (version_values(record, latest), list(latest.problems or []),
            _standing(record, latest), latest.typed)


def _form_page(record: Record, values: dict[str, Any], problems: list[dict[str, Any]],
               notice: ResultModel | None, *, raw: dict[str, str] | None = None,
               section: int | None = None) -> Response:
    sections = web_form(values, version=record.schema_version,
                        tenant_options=record.tenant_options, problems=problems, raw=raw)
    return _html("practitioner/online.html", page=_page_model(record, own_upload=False),
                 sections=sections, notice=notice, saved_section=section,
                 tenant_name=_tenant_name(record), submit=SUBMIT)


@bp.get("/form/<token>/online")
def online_form(token: str) -> Response:
    """The online form, holding the practitioner's last version."""
    record = _record_for(token, "form")
    if record.status in (COMPLETE, CANCELLED):
        return _render_record(record)
    _accessed(record, "viewed", "the online form")
    values, problems, notice, typed = _current(record)
    return _form_page(record, values, problems, notice, raw=typed)


_DRAFT = re.compile(r"draft-([0-9]{1,2})")


def _section_of(action: str) -> int | None:
    """The section whose draft button was pressed, ``None`` for a submission; anything else
    is not one of the form's buttons (400: nothing is saved, least of all a submission)."""
    if action == SUBMIT:
        return None
    found = _DRAFT.fullmatch(action)
    if found is None:
        raise BadRequest("The form was sent without one of its buttons; nothing was saved.")
    return int(found[1])


@bp.post("/form/<token>/online")
def online_save(token: str) -> Response:
    """Save the online form as the next version: a draft, or a submission."""
    record = _record_for(token, "form")
    section = _section_of(request.form.get("action", ""))
    submit = section is None
    values, unread, raw = read_web_form(request.form, version=record.schema_version,
                                        tenant_options=record.tenant_options)
    with session_scope() as session:
        result = save_online(session, record, values, unread, submit=submit, typed=raw)
    record = _reload(record)
    notice = _result_model(result, record.schema_version)
    if result.rejection_code is not None or result.completed:
        return _render_record(record, notice, result.http_status)
    merged = {**(record.prefill or {}), **values}
    return _form_page(record, merged, result.missing, notice, raw=raw, section=section)
