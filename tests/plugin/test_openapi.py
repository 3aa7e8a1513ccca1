"""The OpenAPI 3.1 document, and schemathesis against the live app: no 5xx, and every answer
as the document says (status code, content type, body schema).

The app runs in a real HTTP server (werkzeug's, threaded) on SQLite. Schemathesis generates
requests from the document, valid and invalid; the test makes many of them reach deeper than a
refusal at the door: a webhook case is signed with the tenant's secret (so the event's content
is what is tested), and a link case gets a real record's token half of the time.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from werkzeug.serving import make_server

from sharewise.plugin.demo import sample_event, signed_request
from sharewise.plugin.openapi import document
from tests.conftest import TENANT_SECRETS, write_tenants_file


@schemathesis.serializer("application/pdf")
def _pdf(ctx: Any, value: Any) -> bytes:
    """A raw PDF body: what was generated for it, as bytes (far from a PDF, mostly)."""
    return value if isinstance(value, bytes) else str(value).encode()


SCHEMA = schemathesis.openapi.from_dict(document())
EXAMPLES = 60  # per operation; eight operations


class Live:
    """The app behind a real HTTP server, and one record's links."""

    def __init__(self, root: Path) -> None:
        from sharewise.plugin.app import create_app

        data = root / "data"
        data.mkdir()
        self.app = create_app({
            "DATA_DIR": str(data), "TENANTS": str(write_tenants_file(root / "tenants.toml")),
            "DATABASE_URL": f"sqlite:///{data / 'sharewise.db'}",
            "BROKER_URL": f"sqla+sqlite:///{data / 'broker.db'}",
            "STORAGE_URL": str(data / "files"), "SECRET_KEYS": "test-link-key",
            "LOG_LEVEL": "WARNING", "BASE_URL": "http://127.0.0.1",
            "WEBHOOK_FAILURES_PER_ADDRESS": "100000/minute",
            "WEBHOOK_FAILURES_PER_TENANT": "100000/minute"})
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        body, headers = signed_request(TENANT_SECRETS["northshire"], sample_event())
        made = httpx.post(f"{self.base}/webhooks/northshire", content=body, headers=headers)
        assert made.status_code == 201, made.text
        self.tokens = {key: url.rstrip("/").split("/")[-1 if key != "form_pdf_url" else -2]
                       for key, url in made.json().items() if key.endswith("_url")}
        self.session = requests.Session()
        self.answers: dict[int, int] = {}

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    served = Live(tmp_path_factory.mktemp("openapi"))
    yield served
    served.stop()
    # the run reached past the door: signed events were read, real links opened
    assert {200, 201, 401, 403, 422} <= set(served.answers), served.answers


_TOKEN_KEY = {"/form/{token}": "form_url", "/form/{token}/pdf": "form_pdf_url",
              "/upload/{token}": "upload_url", "/status/{token}": "status_url"}


def _coin(case: Any, n: int = 0) -> bool:
    """A stable half of the cases (from the case's own content); ``n`` picks another half."""
    seed = repr((case.path_parameters, case.headers, case.body)).encode()
    return hashlib.sha256(seed).digest()[n] % 2 == 0


SIGNATURE = ("webhook-id", "webhook-timestamp", "webhook-signature")


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_live_app_answers_every_request_as_documented(case: Any, live: Live) -> None:
    path = case.operation.path
    if path == "/webhooks/{tenant}" and _coin(case):
        case.path_parameters["tenant"] = "northshire"
    if path in _TOKEN_KEY and _coin(case):
        case.path_parameters["token"] = live.tokens[_TOKEN_KEY[path]]
    kwargs = case.as_transport_kwargs(base_url=live.base)
    if (path == "/webhooks/{tenant}" and case.path_parameters.get("tenant") == "northshire"
            and all(h in (case.headers or {}) for h in SIGNATURE)
            and not (_coin(case, 1) and _coin(case, 2))):
        # a case with the three headers: three in four signed for real
        body = json.dumps(case.body).encode() if "json" in kwargs else kwargs.get("data", b"")
        kwargs.pop("json", None)
        kwargs["data"] = body if isinstance(body, bytes) else str(body).encode()
        _, signed = signed_request(TENANT_SECRETS["northshire"], kwargs["data"])
        kwargs["headers"] = {**kwargs.get("headers", {}), **signed}
    response = live.session.request(**kwargs, timeout=30)
    live.answers[response.status_code] = live.answers.get(response.status_code, 0) + 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    # every check but "positive data acceptance": the service also checks what a schema cannot
    # say (dates between 2000 and 2100, a known request id, a usable PDF), and refuses a
    # request that is valid in shape with a documented 4xx problem
    case.validate_response(response, transport_kwargs=kwargs,
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_the_document_is_served_and_names_every_route(client: Any, app: Any) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200 and served.get_json() == document()
    documented = {p.replace("{", "<").replace("}", ">") for p in document()["paths"]}
    people = ("/demo-host", "/admin")  # pages for people, not the host's API
    routes = {str(r.rule).replace("<tenant_slug>", "<tenant>") for r in app.url_map.iter_rules()
              if not r.endpoint.endswith("static") and not str(r.rule).startswith(people)}
    assert routes == documented
    assert document()["openapi"] == "3.1.0"
