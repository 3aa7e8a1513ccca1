"""docs/host-integration.md works as written: its schemas are current, its examples match
them, its Python and curl code sends an event the live app accepts and verifies a real
post-back, and every body Sharewise really posts matches the published schema."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.openapi import GUIDE_END, GUIDE_START, document, event_schemas, guide_schemas
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.outbox.services import body_bytes, enqueue_record_overdue
from sharewise.plugin.records.models import Record
from sharewise.plugin.signing import sign_headers
from sharewise.plugin.storage import storage
from sharewise.plugin.tenants import get_tenant
from tests.plugin.uploads.journey import complete_answers, create_record, filled_pdf, path_of

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "host-integration.md"
TEXT = GUIDE.read_text()


def _block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->``."""
    found = re.search(re.escape(f"<!-- {marker} -->") + r"\s*```\w*\n(.*?)\n```", TEXT, re.S)
    assert found, f"no block marked {marker}"
    return found[1]


EXAMPLES = re.findall(r"<!-- example: ([\w.]+) -->", TEXT)


def _validator(name: str) -> Draft202012Validator:
    if name == "problem":
        root = dict(document())
        root["$ref"] = "#/components/schemas/Problem"
        return Draft202012Validator(root)
    return Draft202012Validator(event_schemas()[name])


def test_the_schemas_section_is_current() -> None:
    start, end = TEXT.index(GUIDE_START) + len(GUIDE_START), TEXT.index(GUIDE_END)
    assert TEXT[start:end].strip() == guide_schemas().strip(), (
        "run `sharewise openapi --guide docs/host-integration.md`")


def test_every_event_has_an_example_and_a_schema() -> None:
    assert set(EXAMPLES) == {*event_schemas(), "problem"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_example_matches_its_schema(name: str) -> None:
    example = json.loads(_block(f"example: {name}"))
    errors = [e.message for e in _validator(name).iter_errors(example)]
    assert not errors


@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - {"problem"}))
def test_a_body_missing_its_data_fails_the_schema(name: str) -> None:
    """The check has teeth: drop a required member and the schema says so."""
    example = json.loads(_block(f"example: {name}"))
    example["data"].pop("request_id")
    assert list(_validator(name).iter_errors(example))


@pytest.fixture
def live(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _env(live: str, app: Any) -> dict[str, str]:
    secret = get_tenant("northshire", app).webhook_secrets[0]
    return {"SHAREWISE_URL": live, "TENANT": "northshire", "WEBHOOK_SECRET": secret}


def test_the_python_example_sends_an_event_the_app_accepts(live: str, app: Any,
                                                           monkeypatch: pytest.MonkeyPatch):
    for key, value in _env(live, app).items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(_block("run: python-send"), "host-integration.md", "exec"), {})  # noqa: S102
    record_id, form_url = out.getvalue().split()
    assert record_id.startswith("SR-") and "/form/" in form_url
    with session_scope(app, readonly=True) as session:
        assert session.scalar(select(Record.case_reference).where(
            Record.public_id == record_id)) == "CASE-2026-0042"


def test_the_curl_example_sends_an_event_the_app_accepts(live: str, app: Any,
                                                         tmp_path: Path) -> None:
    event = json.loads(_block("example: share.requested"))
    event["timestamp"] = datetime.now(UTC).isoformat()
    event["data"]["request_id"] = "REQ-CURL-1"
    (tmp_path / "event.json").write_text(json.dumps(event))
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", _block("run: curl-send")],
                         cwd=tmp_path, env={"PATH": os.environ["PATH"], **_env(live, app)},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr + run.stdout
    answer = json.loads(run.stdout)
    assert answer["record_id"].startswith("SR-") and answer["status"] == "awaiting_completion"


def _verify() -> Any:
    scope: dict[str, Any] = {}
    exec(compile(_block("run: python-verify"), "host-integration.md", "exec"), scope)  # noqa: S102
    return scope["verify"]


def test_real_post_backs_match_the_schemas_and_the_verify_example(
        app: Any, client: Any, signed_post: Any, sample_event: Any) -> None:
    """A completed, a cancelled and an overdue record: each body as Sharewise posts it."""
    done = create_record(signed_post, sample_event)
    pdf = filled_pdf(app, done["record_id"], complete_answers())
    upload = client.post(path_of(done["upload_url"]), data=pdf, headers={
        "Content-Type": "application/pdf", "Accept": "application/json"})
    assert upload.get_json()["status"] == "complete"
    dropped = sample_event()
    assert signed_post("northshire", dropped).status_code == 201
    cancel = {"type": "share.cancelled", "timestamp": datetime.now(UTC).isoformat(),
              "data": {"request_id": dropped["data"]["request_id"], "reason": "withdrawn"}}
    assert signed_post("northshire", cancel).status_code == 200
    late = create_record(signed_post, sample_event)
    with session_scope(app) as session:
        record = session.scalar(select(Record).where(Record.public_id == late["record_id"]))
        enqueue_record_overdue(session, record, escalated_to="manager", step="test:manager")
    with session_scope(app, readonly=True) as session:
        bodies = [body_bytes(d.public_id, d.payload, d.pdf_key, storage(app).get)
                  for d in session.scalars(select(Delivery))]
    seen = set()
    verify = _verify()
    secret = "whsec_" + "c2VjcmV0LWZvci10aGUtdmVyaWZ5LWV4YW1wbGU="
    for body in bodies:
        event = json.loads(body)
        seen.add(event["type"])
        errors = [e.message for e in _validator(event["type"]).iter_errors(event)]
        assert not errors, (event["type"], errors)
        headers = sign_headers(secret, "msg_test", body)
        assert verify(body, headers, secret) == "msg_test"
        with pytest.raises(ValueError):
            verify(body + b" ", headers, secret)
    assert seen == {"share.record_completed", "share.record_cancelled", "share.record_overdue"}


def test_the_openapi_command_prints_the_document() -> None:
    run = subprocess.run([str(Path(sys.executable).with_name("sharewise")), "openapi"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(run.stdout) == json.loads(json.dumps(document()))
