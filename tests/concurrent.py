"""Posting deliveries to the app from several threads at the same moment (races)."""

from __future__ import annotations

import threading
from typing import Any


def post_all_at_once(app: Any, tenant: Any, deliveries: list[tuple[bytes, dict[str, str]]]
                     ) -> list[tuple[int, Any]]:
    """POST each signed delivery to ``/webhooks/<tenant>`` from its own thread, all released
    together by a barrier; ``(status, json)`` per delivery, in order."""
    barrier = threading.Barrier(len(deliveries))
    results: list[Any] = [None] * len(deliveries)

    def run(i: int, body: bytes, headers: dict[str, str]) -> None:
        client = app.test_client()
        barrier.wait()
        resp = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
        results[i] = (resp.status_code, resp.get_json())

    threads = [threading.Thread(target=run, args=(i, b, h))
               for i, (b, h) in enumerate(deliveries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
