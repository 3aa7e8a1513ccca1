"""The upload address answers what the client prefers: ``curl -F file=@form.pdf UPLOAD_URL``
(``Accept: */*``) gets JSON, a browser (``text/html`` first) gets the page."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.uploads.journey import complete_answers, create_record, filled_pdf, path_of

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "json_answer"), [
    (None, True), ("*/*", True), ("application/json", True),
    ("application/json, text/html;q=0.5", True), (BROWSER, False), ("text/html", False)])
def test_the_upload_answer_follows_accept(client: Any, signed_post: Any, sample_event: Any,
                                          accept: str | None, json_answer: bool) -> None:
    made = create_record(signed_post, sample_event)
    headers = {"Accept": accept} if accept else {}
    resp = client.post(path_of(made["upload_url"]), headers=headers,
                       data={"file": (io.BytesIO(b"not a pdf"), "form.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    if json_answer:
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["code"] == "not_pdf"
    else:
        assert resp.mimetype == "text/html"


def test_curl_dash_f_gets_json(live_server: str, app: Any, signed_post: Any,
                               sample_event: Any, tmp_path: Path, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("once is enough")
    made = create_record(signed_post, sample_event)
    form = tmp_path / "form.pdf"
    form.write_bytes(filled_pdf(app, made["record_id"], complete_answers()))
    upload_url = made["upload_url"]  # BASE_URL is the live server
    run = subprocess.run(["curl", "-sS", "-F", f"file=@{form}", upload_url],
                         capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(run.stdout)
    assert answer["record_id"] == made["record_id"] and answer["status"] == "complete"
