"""Reminder and digest emails: wording, time zone, link, and no personal data, ever."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sharewise.plugin.mail import ConsoleBackend, make_message_id, send_mail
from sharewise.plugin.reminders.emails import digest_email, ref_from_values, reminder_email

LONDON = ZoneInfo("Europe/London")

# Prefill values with distinctive personal data that must never reach an email.
VALUES = {
    "case_reference": "CASE/4471",
    "subject_name": "Zebedee Quattlebaum",
    "subject_date_of_birth": "2013-07-19",
    "practitioner_name": "Philippa Oyelaran-Vance",
    "practitioner_email": "p.vance@social.example",
    "manager_name": "Marguerite Thistlewood",
    "manager_email": "m.thistlewood@social.example",
    "purpose": "Concerns raised by Xanthippe school nurse",
    "information_requested": "Attendance notes kept by Ignatius Blackwood-Pym",
    "recipient_name": "Dr Ottoline Fairweather",
}
SECRETS = ["Zebedee", "Quattlebaum", "2013-07-19", "19/07/2013", "Philippa", "Oyelaran",
           "Marguerite", "Thistlewood", "Xanthippe", "Ignatius", "Blackwood", "Ottoline",
           "Fairweather", "Concerns raised", "Attendance notes"]
DUE = datetime(2026, 5, 26, 16, 0, tzinfo=UTC)  # 17:00 BST
LINK = "https://sharewise.example/p/SR-7Q2K?token=abc"


def ref():
    return ref_from_values("SR-7Q2K", VALUES, DUE, LINK)


@pytest.mark.parametrize("kind,role,subject", [
    ("due_soon", "practitioner", "Information-sharing record SR-7Q2K is due soon"),
    ("due_now", "practitioner", "Information-sharing record SR-7Q2K is due now"),
    ("overdue", "practitioner", "Information-sharing record SR-7Q2K is overdue"),
    ("overdue", "manager", "Information-sharing record SR-7Q2K is overdue"),
])
def test_reminder_wording(kind, role, subject):
    mail = reminder_email(ref(), kind, role, LONDON)
    assert mail.subject == subject
    for part in (mail.text, mail.html):
        assert "CASE/4471" in part
        assert "Tuesday 26 May 2026, 17:00 BST" in part
        assert "SR-7Q2K" in part
    assert LINK in mail.text
    assert 'href="https://sharewise.example/p/SR-7Q2K?token=abc"' in mail.html
    assert ("manager of the practitioner" in mail.text) == (role == "manager")


def test_due_date_in_winter_time_zone():
    r = ref_from_values("SR-1", VALUES, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), LINK)
    assert "Tuesday 1 December 2026, 17:00 GMT" in reminder_email(
        r, "due_now", "practitioner", LONDON).text


def test_html_is_escaped():
    r = ref_from_values("SR-1", {"case_reference": "<b>A&B</b>"}, DUE, LINK)
    html = reminder_email(r, "due_now", "practitioner", LONDON).html
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in html and "<b>A&B" not in html


def test_no_personal_data_in_any_email_or_the_wire_format():
    mails = [reminder_email(ref(), k, r, LONDON) for k, r in [
        ("due_soon", "practitioner"), ("due_now", "practitioner"), ("overdue", "manager")]]
    mails.append(digest_email([ref(), ref_from_values("SR-2", VALUES, DUE, LINK)],
                              date(2026, 5, 27), LONDON))
    for mail in mails:
        # Through the real MIME serialisation too (quoted-printable / base64 would hide words).
        import io
        out = io.StringIO()
        send_mail({"MAIL_FROM": "sw@council.example"}, "someone@x.example", mail.subject,
                  mail.text, html=mail.html, message_id=make_message_id("k", "sw@x"),
                  backend=ConsoleBackend(out))
        for blob in (mail.subject, mail.text, mail.html, out.getvalue()):
            for secret in SECRETS:
                assert secret.lower() not in blob.lower(), (secret, mail.subject)


def test_digest_lists_records_oldest_first():
    later = ref_from_values("SR-LATE", {"case_reference": "C-2"},
                            datetime(2026, 5, 27, 16, 0, tzinfo=UTC), LINK + "2")
    mail = digest_email([later, ref()], date(2026, 5, 28), LONDON)
    assert mail.subject == "2 overdue information-sharing records for your team (28 May 2026)"
    assert mail.text.index("SR-7Q2K") < mail.text.index("SR-LATE")
    assert "C-2" in mail.html and LINK + "2" in mail.text
    one = digest_email([ref()], date(2026, 5, 28), LONDON)
    assert one.subject.startswith("1 overdue information-sharing record for")
