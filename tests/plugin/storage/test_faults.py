"""A full or read-only file store, for real: a small tmpfs and a read-only bind mount.

Every entry point answers a store failure the same way (503 ``storage-unavailable`` with
``Retry-After``): the upload page and its JSON, the ``share.form_submitted`` webhook, and an
upload whose bytes were stored but whose final PDF could not be. Nothing is recorded half-way.
The first download of a prefilled form is still served when it cannot be kept. The mounts need
root (CI runs as root); elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sharewise.plugin.app import create_app
from sharewise.plugin.db import engine_for, session_scope
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.records.models import WebhookEvent
from sharewise.plugin.uploads.models import UploadVersion
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    record_row,
)

JSON = {"Content-Type": "application/pdf", "Accept": "application/json"}
PAGE = 4096


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode})")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def make_app(app_config, backend) -> Any:
    """Build an app whose file store is ``store`` (after the test has set the store up)."""
    if backend != "sqlite":
        pytest.skip("the file store is the same on both databases")
    made: list[Any] = []

    def make(store: Path) -> Any:
        app = create_app({**app_config, "STORAGE_URL": str(store)})
        made.append(app)
        return app

    yield make
    for app in made:
        engine_for(app).dispose()


@pytest.fixture
def read_only(tmp_path) -> Any:
    """``(source, mounted)``: ``mounted`` shows ``source`` read-only once ``freeze()`` runs."""
    source, mounted = tmp_path / "store-src", tmp_path / "store"
    source.mkdir()
    mounted.mkdir()
    _mount("--bind", str(source), str(mounted))

    def freeze() -> None:
        _mount("-o", "remount,bind,ro", str(mounted))

    yield mounted, freeze
    _umount(mounted)


def _counts(app: Any) -> tuple[int, int, int]:
    with app.app_context(), session_scope(app, readonly=True) as session:
        return tuple(session.scalar(select(func.count()).select_from(m))
                     for m in (UploadVersion, Delivery, WebhookEvent))


def _form_submitted(request_id: str, pdf: bytes) -> dict[str, Any]:
    return {"type": "share.form_submitted", "timestamp": "2026-01-01T00:00:00Z",
            "data": {"request_id": request_id,
                     "pdf_base64": base64.b64encode(pdf).decode("ascii")}}


def _unavailable(resp: Any) -> None:
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "60"
    assert "Traceback" not in resp.get_data(as_text=True)


def _post_event(app: Any, event: dict[str, Any], webhook_id: str) -> Any:
    from sharewise.plugin.demo import signed_request
    from sharewise.plugin.tenants import get_tenant

    with app.app_context():
        tenant = get_tenant("northshire")
    body, headers = signed_request(tenant.webhook_secrets[0], event, webhook_id)
    return app.test_client().post(f"/webhooks/{tenant.slug}", data=body, headers=headers)


def test_a_read_only_store_is_503_everywhere_and_records_nothing(make_app, read_only, app,
                                                                 signed_post, sample_event):
    made = create_record(signed_post, sample_event)  # intake writes no file
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, partial_answers())
    mounted, freeze = read_only
    frozen = make_app(mounted)  # the same database, its files on the read-only mount
    freeze()
    client = frozen.test_client()
    before = _counts(frozen)

    # the first download: the form is made from the record's values and served, not kept
    download = client.get(path_of(made["form_pdf_url"]))
    assert download.status_code == 200 and download.data.startswith(b"%PDF-")
    assert not list(mounted.rglob("*.pdf"))

    # an upload, as JSON and through the page
    resp = client.post(path_of(made["upload_url"]), data=pdf, headers=JSON)
    _unavailable(resp)
    assert resp.get_json()["type"] == "urn:sharewise:problem:storage-unavailable"
    page = client.post(path_of(made["form_url"]), data={"file": (io.BytesIO(pdf), "a.pdf")},
                       content_type="multipart/form-data")
    _unavailable(page)
    assert page.mimetype == "text/html"

    # the host's share.form_submitted
    request_id = record_row(frozen, rid).request_id
    event = _post_event(frozen, _form_submitted(request_id, pdf), "msg_submitted")
    _unavailable(event)
    assert event.mimetype == "application/problem+json"
    assert event.get_json()["type"] == "urn:sharewise:problem:storage-unavailable"

    assert _counts(frozen) == before
    assert record_row(frozen, rid).status == "awaiting_completion"


def test_a_full_store_after_the_upload_bytes_is_503_and_records_nothing(make_app, tmp_path, app,
                                                                       signed_post,
                                                                       sample_event):
    """The upload's bytes fit; the final PDF does not: no version, no completion, no
    post-back row, and once there is room the same upload completes the record."""
    made = create_record(signed_post, sample_event)
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, complete_answers())
    # room for the upload's bytes (tmpfs counts whole pages) and not for the final record
    store = tmp_path / "small"
    store.mkdir()
    size = (len(pdf) // PAGE + 2) * PAGE
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(store))
    try:
        small = make_app(store)
        client = small.test_client()
        before = _counts(small)
        resp = client.post(path_of(made["upload_url"]), data=pdf, headers=JSON)
        _unavailable(resp)
        assert resp.get_json()["type"] == "urn:sharewise:problem:storage-unavailable"
        assert len(list(store.rglob("upload-*.pdf"))) == 1  # the bytes were kept
        assert not list(store.rglob("final-*.pdf"))
        assert _counts(small) == before
        assert record_row(small, rid).status == "awaiting_completion"
        _mount("-o", f"remount,size={size * 8}", str(store))  # room again
        again = client.post(path_of(made["upload_url"]), data=pdf, headers=JSON)
        assert again.status_code == 200 and again.get_json()["status"] == "complete"
    finally:
        _umount(store)
