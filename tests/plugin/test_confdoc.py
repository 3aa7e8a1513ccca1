"""The configuration reference is generated from the definitions, and the definitions are
what the code does: documented defaults give the code's defaults, an unknown key is refused,
a bad value stops start-up naming the tenant and key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sharewise.plugin.app import TENANT_CHECKS
from sharewise.plugin.confdoc import reference
from sharewise.plugin.records.policy import due_at
from sharewise.plugin.reminders.policy import parse_reminder_policy
from sharewise.plugin.signing import generate_secret
from sharewise.plugin.tenants import (
    POLICY_KEYS,
    TENANT_KEYS,
    TenantsError,
    parse_tenants,
)

ROOT = Path(__file__).resolve().parents[2]
SHAREWISE = str(Path(sys.executable).with_name("sharewise"))
SECRET = generate_secret()


def test_the_reference_is_generated_from_the_definitions() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == reference(), (
        "docs/configuration.md is stale: run `sharewise settings --docs docs/configuration.md`")


def _documented(keys: Any) -> dict[str, Any]:
    """The documented defaults that are TOML values."""
    return {k.name: tomllib.loads(f"v = {k.default}")["v"] for k in keys
            if k.default and k.default != "the slug"}


def test_documented_policy_defaults_are_the_codes() -> None:
    documented = _documented(POLICY_KEYS)
    assert set(documented) == {k.name for k in POLICY_KEYS}
    assert parse_reminder_policy(documented) == parse_reminder_policy({})
    when = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)  # a Friday
    for urgency in ("routine", "urgent", "emergency"):
        assert due_at(when, urgency, policy=documented) == due_at(when, urgency, policy={})


def test_documented_tenant_defaults_are_the_codes() -> None:
    documented = _documented(TENANT_KEYS)
    documented.pop("webhook_secrets")  # a list of secrets has no meaningful default
    bare = parse_tenants({"tenants": {"t": {"webhook_secret": SECRET}}})["t"]
    spelled = parse_tenants({"tenants": {"t": {"webhook_secret": SECRET, **documented}}})["t"]
    assert spelled == bare


@pytest.mark.parametrize(("table", "message"), [
    ({"webhook_secret": SECRET, "retention": 30}, "tenant 't': unknown key 'retention'"),
    ({"webhook_secret": SECRET, "policy": {"due_tme": "17:00"}},
     "tenant 't', policy: unknown key 'due_tme'"),
    ({"webhook_secret": SECRET, "policy": {"due_time": "5pm"}},
     "tenant 't', policy: due_time must be a local time like '17:00'"),
    ({"webhook_secret": SECRET, "policy": {"emergency_hours": 0}},
     "tenant 't', policy: emergency_hours must be a number of hours above 0"),
    ({"webhook_secret": SECRET, "policy": {"send_hours": "18:00-08:00"}},
     "tenant 't', policy: send_hours"),
    ({"webhook_secret": SECRET, "policy": {"reminder_steps": [{"offset": "soon"}]}},
     "tenant 't', policy: "),
])
def test_a_bad_key_or_value_is_refused_by_name(table: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantsError) as caught:
        parse_tenants({"tenants": {"t": table}}, TENANT_CHECKS)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_bad_tenants_file_stops_start_up_in_one_line(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f'[tenants.t]\nwebhook_secret = "{SECRET}"\n'
                       '[tenants.t.policy]\ndigest_time = "late"\n')
    env = {"PATH": "/usr/bin:/bin", "SHAREWISE_DATA_DIR": str(tmp_path / "var"),
           "SHAREWISE_TENANTS": str(tenants)}
    run = subprocess.run([SHAREWISE, "web"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "sharewise: tenant 't', policy: digest_time must be a local time like '08:00'"]
