"""A host that is offline (connection refused) for a while: retried until it is back.

This module stretches the shrunk schedule a little (0.2 s between attempts) so the test can
bring the host back well before the tenth attempt, even on a loaded machine.
"""

from __future__ import annotations

import pytest

from sharewise.plugin.outbox.models import DELIVERED
from tests.plugin.outbox.test_outbox_delivery import load, overdue, state_is, wait_until


@pytest.fixture
def app_config(app_config):
    app_config["DELIVERY_SCHEDULE"] = "0" + ",0.2" * 9
    return app_config


def test_connection_refused_is_retried_until_the_host_is_back(app, host, make_record,
                                                              celery_worker):
    record = make_record()
    host.go_offline()
    wid = overdue(app, record)
    wait_until(lambda: load(app, wid)[0].attempts >= 2)
    host.come_back()
    wait_until(state_is(app, wid, DELIVERED))
    d, attempts = load(app, wid)
    assert {a.error for a in attempts[:-1]} == {"connect_error"}
    assert attempts[-1].verdict == "success"
    assert list(host.records) == [wid] and len(host.requests) == 1
