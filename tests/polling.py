"""Waiting for something the database or a worker will make true (they cannot notify us)."""

import time
from typing import Any


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds (generous: it only matters when something is wrong)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
