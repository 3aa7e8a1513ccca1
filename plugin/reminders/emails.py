"""Reminder, request and digest email content: subject, plain text and HTML.

Email is not a secure channel, so these builders only ever see a :class:`RecordRef` (record id,
case reference, due time, link): a person's name, date of birth or anything typed into the form
cannot reach an email because it is never passed in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from sharewise.plugin.reminders.policy import Kind, Role

FOOTER = ("This email leaves out who the record is about on purpose: email is not a secure "
          "channel. Follow the link to see the record.")


@dataclass(frozen=True)
class RecordRef:
    """What an email may say about a record."""

    record_id: str
    case_reference: str
    due_at: datetime
    link: str


@dataclass(frozen=True)
class EmailContent:
    """A built email."""

    subject: str
    text: str
    html: str


def ref_from_values(record_id: str, values: Mapping[str, Any], due_at: datetime,
                    link: str) -> RecordRef:
    """Pick the safe fields out of a record's prefill values (the case reference only)."""
    return RecordRef(record_id=record_id,
                     case_reference=str(values.get("case_reference") or "not given"),
                     due_at=due_at, link=link)


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=72, break_long_words=False, break_on_hyphens=False)


def format_due(when: datetime, zone: ZoneInfo) -> str:
    """``Tuesday 26 May 2026, 17:00 BST`` in the tenant's time zone."""
    local = when.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


_SUBJECT = {"request": "is waiting for your decision",
            "due_soon": "is due soon", "due_now": "is due now", "overdue": "is overdue",
            "review": "is due for review", "inform": "says the person is to be told",
            "escalation": "was not endorsed"}


def _lead(kind: Kind, role: Role, due: str, on: str = "") -> str:
    if kind == "review":
        return (f"The decision not to share recorded here set {on} as the date to look at it "
                "again. Check whether anything has changed; if it has, record a new decision.")
    if kind == "inform":
        return (f"This record says the person (or their family) will be told about the sharing "
                f"by {on}. If they have not been told yet, tell them, unless that has become "
                "unsafe, and note it in the case system.")
    if kind == "escalation":
        return ("The decision on this record was not endorsed by the manager who reviewed it. "
                "The record stays open until the disagreement is resolved. You are receiving "
                "this as the manager of the practitioner it is assigned to.")
    if kind == "request":
        return ("A new information-sharing decision record has been assigned to you. Open "
                f"the link below to see what is asked, and complete the record by {due}.")
    if kind == "due_soon":
        return f"This information-sharing decision record is due by {due}."
    if kind == "due_now":
        return f"This information-sharing decision record is due now ({due}) and is not complete."
    if role == "manager":
        return (f"This information-sharing decision record was due {due} and is still not "
                "complete. You are receiving this as the manager of the practitioner it is "
                "assigned to.")
    return f"This information-sharing decision record was due {due} and is not complete yet."


def _html_page(title: str, body: Markup) -> str:
    return str(Markup(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>"
        "<body style=\"font-family: sans-serif; line-height: 1.4\">{}"
        "<p style=\"color: #555; font-size: 0.9em\">{}</p></body></html>"
    ).format(title, body, FOOTER))


def reminder_email(ref: RecordRef, kind: Kind, role: Role, zone: ZoneInfo,
                   when: datetime | None = None) -> EmailContent:
    """The email for one reminder row: a policy step, the request email that tells the
    practitioner of a new record, a follow-up (``when``: the moment the row was due, which a
    review or telling-the-person reminder names) or an escalation."""
    subject = f"Information-sharing record {ref.record_id} {_SUBJECT[kind]}"
    due = format_due(ref.due_at, zone)
    day = (when or ref.due_at).astimezone(zone)
    on = f"{day:%A} {day.day} {day:%B %Y}"
    lead = _lead(kind, role, due, on)
    chasing = kind in ("request", "due_soon", "due_now", "overdue")
    label, shown = {"review": ("Review date", on), "inform": ("Tell the person by", on)}.get(
        kind, ("Due", due))
    link_text = ("Open the record to complete it" if chasing and role == "practitioner"
                 else "Open the record")
    text = (f"{_wrap(lead)}\n\n"
            f"Record: {ref.record_id}\n"
            f"Case reference: {ref.case_reference}\n"
            f"{label}: {shown}\n\n"
            f"{link_text}:\n{ref.link}\n\n"
            f"{_wrap(FOOTER)}\n")
    body = Markup(
        "<p>{}</p><table><tr><th align=\"left\">Record</th><td>{}</td></tr>"
        "<tr><th align=\"left\">Case reference</th><td>{}</td></tr>"
        "<tr><th align=\"left\">{}</th><td>{}</td></tr></table>"
        "<p><a href=\"{}\">{}</a></p>"
    ).format(lead, ref.record_id, ref.case_reference, label, shown, ref.link, link_text)
    return EmailContent(subject=subject, text=text, html=_html_page(subject, body))


def digest_email(refs: Sequence[RecordRef], day: date, zone: ZoneInfo,
                 team_link: str | None = None) -> EmailContent:
    """A manager's daily digest: every overdue record of their practitioners, oldest first,
    and (``team_link``) the link to all their team's open records."""
    items = sorted(refs, key=lambda r: (r.due_at, r.record_id))
    n = len(items)
    noun = "record" if n == 1 else "records"
    subject = f"{n} overdue information-sharing {noun} for your team ({day:%d %B %Y})"
    intro = (f"{n} information-sharing decision {noun} assigned to practitioners you manage "
             f"{'is' if n == 1 else 'are'} overdue:")
    lines = [_wrap(intro), ""]
    for r in items:
        lines += [f"- {r.record_id} (case reference {r.case_reference}), "
                  f"due {format_due(r.due_at, zone)}", f"  {r.link}"]
    team = "All your team's open records, overdue first"
    if team_link:
        lines += ["", f"{team}:", team_link]
    text = "\n".join(lines) + f"\n\n{_wrap(FOOTER)}\n"
    rows = Markup("").join(
        Markup("<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td></tr>").format(
            r.link, r.record_id, r.case_reference, format_due(r.due_at, zone))
        for r in items)
    body = Markup(
        "<p>{}</p><table cellpadding=\"4\"><tr><th align=\"left\">Record</th>"
        "<th align=\"left\">Case reference</th><th align=\"left\">Due</th></tr>{}</table>"
    ).format(intro, rows)
    if team_link:
        body += Markup("<p><a href=\"{}\">{}</a></p>").format(team_link, team)
    return EmailContent(subject=subject, text=text, html=_html_page(subject, body))
