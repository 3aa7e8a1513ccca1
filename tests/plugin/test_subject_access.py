"""Subject access export (issue 18): ``sharewise export`` finds a person's records by keyed
hash (however the name is spaced or cased), writes each with its audit trail and PDFs, lists
the free-text answers for third-party review, and leaves everyone else's records out."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sharewise.plugin.cli import main
from tests.plugin.reminders.test_reminders_cli import env_of
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    path_of,
)


def _person(name, dob="2014-03-09"):
    return {"name": name, "date_of_birth": dob, "type": "child"}


def test_export_writes_the_persons_records_and_no_one_elses(app, app_config, client,
                                                            signed_post, sample_event,
                                                            tmp_path):
    mine = create_record(signed_post, sample_event, subject=_person("Zoë Ångström"))
    answers = {**complete_answers(), "decision_reasons": "Her aunt Mabel Eastwood told us."}
    pdf = filled_pdf(app, mine["record_id"], answers)
    done = client.post(path_of(mine["upload_url"]), data=pdf,
                       headers={"Content-Type": "application/pdf", "Accept": "application/json"})
    assert done.get_json()["status"] == "complete"
    again = create_record(signed_post, sample_event, subject=_person("ZOË   ångström "))
    create_record(signed_post, sample_event, subject=_person("Zoë Ångström", "2015-01-01"))
    create_record(signed_post, sample_event, subject=_person("Zoe Angstrom"))

    out = tmp_path / "sar"
    result = CliRunner().invoke(main, ["export", "--subject-name", "zoë ångström",
                                       "--date-of-birth", "2014-03-09", "--out", str(out)],
                                env=env_of(app_config))
    assert result.exit_code == 0, result.output
    assert "2 record(s)" in result.output
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["records"]) == sorted([mine["record_id"], again["record_id"]])
    doc = json.loads((out / mine["record_id"] / "record.json").read_text())
    assert doc["status"] == "complete"
    assert doc["from_the_case_system"]["subject_name"] == "Zoë Ångström"
    assert doc["uploads"][0]["values"]["decision_reasons"].startswith("Her aunt")
    assert "decision_reasons" in doc["third_party_review"]["fields"]
    assert [e["event"] for e in doc["audit"]][:1] == ["created"]
    assert (out / mine["record_id"] / "final-record.pdf").read_bytes().startswith(b"%PDF-")
    assert (out / mine["record_id"] / "upload-1.pdf").read_bytes() == pdf
    assert (out / mine["record_id"] / "record.json").stat().st_mode & 0o077 == 0

    again_out = CliRunner().invoke(main, ["export", "--subject-name", "x", "--out", str(out)],
                                   env=env_of(app_config))
    assert again_out.exit_code == 1 and "exists already" in again_out.output


def test_no_match_writes_an_empty_export(app, app_config, signed_post, sample_event, tmp_path):
    create_record(signed_post, sample_event)
    result = CliRunner().invoke(main, ["export", "--subject-name", "Nobody Atall",
                                       "--date-of-birth", "2001-01-01",
                                       "--out", str(tmp_path / "none")], env=env_of(app_config))
    assert result.exit_code == 0 and "0 record(s)" in result.output


def test_a_date_of_birth_in_another_format_is_refused(app, app_config, tmp_path):
    result = CliRunner().invoke(main, ["export", "--subject-name", "A B", "--date-of-birth",
                                       "09/03/2014", "--out", str(tmp_path / "x")],
                                env=env_of(app_config))
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
    assert not (tmp_path / "x").exists()
