"""Comparing webhook answers whose links are signed afresh each time they are sent.

The database keeps no links; every answer to ``share.requested``, first or repeated, carries
links signed when it is sent. Two answers are "the same answer" when everything but the
links' tokens is equal (the same record, status, due time, paths) and every link of both
opens the same record.
"""

from __future__ import annotations

import re
from typing import Any

LINK_KEYS = ("form_url", "form_pdf_url", "upload_url", "status_url")


#: A link's token: the path segment after ``/form``, ``/upload`` or ``/status``.
_TOKEN = re.compile(r"^(.*/(?:form|upload|status))/[^/]+(/pdf)?$")


def without_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each link's token replaced by ``<token>`` (keys in order)."""
    out = dict(body)
    for key in LINK_KEYS:
        if isinstance(out.get(key), str):
            out[key] = _TOKEN.sub(r"\1/<token>\2", out[key])
    return out


def same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for the links' tokens, with the same keys in the same order."""
    return list(a) == list(b) and without_tokens(a) == without_tokens(b)


def status_record_id(client: Any, body: dict[str, Any], base: str = "http://sharewise.test"
                     ) -> str:
    """The record id the answer's status link opens."""
    url = body["status_url"]
    assert url.startswith(base + "/")
    resp = client.get(url[len(base):])
    assert resp.status_code == 200, resp.data
    return resp.get_json()["record_id"]
