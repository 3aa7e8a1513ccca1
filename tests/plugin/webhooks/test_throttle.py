"""Failed-signature throttling (issue 18): a flood of forged events is answered 429, counted
per client address and per tenant, while correctly signed events always go through; with
Redis, every web process shares the counts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sharewise.plugin.db import session_scope
from sharewise.plugin.records.models import Record
from sharewise.plugin.settings import update
from sharewise.plugin.signing import generate_secret
from sharewise.plugin.webhooks import throttle


def _limits(app, per_address="5/minute", per_tenant="3/minute", url="memory://"):
    update(app, webhook_failures_per_address=per_address, webhook_failures_per_tenant=per_tenant,
           rate_limit_storage_url=url)
    throttle.init_app(app)


def _records(app) -> int:
    with session_scope(app, readonly=True) as s:
        return s.scalar(select(func.count()).select_from(Record))


def _from(address):
    return {"REMOTE_ADDR": address}


@pytest.fixture
def post_from(client, tenant):
    """``post(address, event, forged=False, slug="northshire")``: a webhook from an address."""
    from sharewise.plugin.demo import signed_request

    def post(address, event, forged=False, slug=tenant.slug):
        secret = generate_secret() if forged else tenant.webhook_secrets[0]
        body, headers = signed_request(secret, event)
        return client.post(f"/webhooks/{slug}", data=body, headers=headers,
                           environ_base=_from(address))

    return post


def test_a_tenant_flooded_from_many_addresses_still_takes_its_hosts_events(app, post_from,
                                                                           sample_event):
    _limits(app)
    codes = [post_from(f"198.51.100.{i}", sample_event(), forged=True).status_code
             for i in range(6)]
    assert codes == [401, 401, 401, 429, 429, 429]
    refused = post_from("198.51.100.99", sample_event(), forged=True)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["type"].endswith("too-many-failures")
    host = post_from("192.0.2.10", sample_event(request_id="REQ-HOST"))
    assert host.status_code == 201  # the real host is not shut out
    assert _records(app) == 1


def test_an_address_that_keeps_failing_gets_429_but_its_signed_events_still_count(
        app, post_from, sample_event):
    _limits(app, per_tenant="1000/minute")
    shared = "203.0.113.5"  # say, a proxy every client comes through
    codes = [post_from(shared, sample_event(), forged=True).status_code for _ in range(3)]
    codes += [post_from(shared, sample_event(), slug=f"nowhere{i}").status_code
              for i in range(2)]  # guessing tenants counts too
    assert codes == [401, 401, 401, 404, 404]
    assert post_from(shared, sample_event(), forged=True).status_code == 429
    assert post_from(shared, sample_event(), slug="nowhere9").status_code == 429
    signed = post_from(shared, sample_event(request_id="REQ-SIGNED"))
    assert signed.status_code == 201  # the host behind the same address is not shut out
    assert _records(app) == 1


def test_normal_traffic_never_meets_a_limit(app, post_from, sample_event):
    _limits(app, per_address="2/minute", per_tenant="2/minute")
    codes = {post_from("192.0.2.10", sample_event(request_id=f"REQ-{i}")).status_code
             for i in range(12)}
    assert codes == {201}


def test_bad_rates_stop_start_up(app_config):
    from sharewise.plugin.app import create_app
    from sharewise.plugin.settings import SettingsError

    with pytest.raises(SettingsError, match="WEBHOOK_FAILURES_PER_TENANT"):
        create_app({**app_config, "WEBHOOK_FAILURES_PER_TENANT": "lots"})


def test_with_redis_every_web_process_shares_the_counts(app, app_config, backend, post_from,
                                                        sample_event, tenant):
    if backend == "sqlite":
        pytest.skip("Redis is one of the services")
    import redis

    url = "redis://127.0.0.1:6379/13"
    redis.Redis.from_url(url).flushdb()
    from sharewise.plugin.app import create_app

    _limits(app, per_tenant="1000/minute", url=url)
    other = create_app(app_config)  # a second web process
    _limits(other, per_tenant="1000/minute", url=url)
    for _ in range(5):
        assert post_from("203.0.113.9", sample_event(), forged=True).status_code == 401
    from sharewise.plugin.demo import signed_request

    body, headers = signed_request(generate_secret(), sample_event())
    resp = other.test_client().post("/webhooks/northshire", data=body, headers=headers,
                                    environ_base=_from("203.0.113.9"))
    assert resp.status_code == 429  # counted by the first process
    redis.Redis.from_url(url).flushdb()
