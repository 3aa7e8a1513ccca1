"""Failed-signature throttling of the webhook endpoint: a flood of forged or broken events is
answered ``429`` instead of being worked through.

Two counts, kept by the ``limits`` library (moving windows, in the process's memory or in
Redis, ``RATE_LIMIT_STORAGE_URL``):

* per **client address**: every failed signature, and every event for a tenant that does not
  exist, counts against the address (``WEBHOOK_FAILURES_PER_ADDRESS``);
* per **tenant**: every failed signature counts against the tenant
  (``WEBHOOK_FAILURES_PER_TENANT``).

Beyond either limit a failing event gets 429 with ``Retry-After`` rather than 401 or 404. A
correctly signed event is always accepted: behind a proxy every client may share one address,
and whoever floods an endpoint must not be able to shut the host out (checking an HMAC costs
microseconds, so there is nothing to save by refusing before it).

Only failures are counted: a host's normal traffic, however busy, never meets a limit. The
address is counted under its keyed hash (:mod:`sharewise.plugin.access`), so not even the
counter store holds client addresses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flask import Flask, current_app
from limits import RateLimitItem, parse, storage, strategies

from sharewise.plugin.settings import settings_of

_EXTENSION = "sharewise.webhook_throttle"


@dataclass(frozen=True)
class Throttle:
    """The two limits and the limiter that counts them."""

    limiter: strategies.RateLimiter
    per_address: RateLimitItem
    per_tenant: RateLimitItem

    def failed(self, client: str | None, tenant: str | None) -> int | None:
        """Count one failure; the seconds to wait when it went over a limit, else ``None``."""
        waits = []
        if client is not None and not self.limiter.hit(self.per_address, "address", client):
            waits.append(self._wait(self.per_address, "address", client))
        if tenant is not None and not self.limiter.hit(self.per_tenant, "tenant", tenant):
            waits.append(self._wait(self.per_tenant, "tenant", tenant))
        return max(waits) if waits else None

    def _wait(self, item: RateLimitItem, *ids: str) -> int:
        reset = self.limiter.get_window_stats(item, *ids).reset_time
        return max(1, math.ceil(reset - time.time()))


def init_app(app: Flask) -> None:
    """Build the app's throttle from its settings."""
    s = settings_of(app)
    limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(
        s.rate_limit_storage_url))
    app.extensions[_EXTENSION] = Throttle(limiter, parse(s.webhook_failures_per_address),
                                          parse(s.webhook_failures_per_tenant))


def throttle() -> Throttle:
    """The current app's throttle."""
    return current_app.extensions[_EXTENSION]
