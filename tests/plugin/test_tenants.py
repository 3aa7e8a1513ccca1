"""Tenants file parsing and ``sharewise tenants add``."""

from __future__ import annotations

import tomllib

import pytest
from click.testing import CliRunner

from sharewise.plugin.cli import main
from sharewise.plugin.signing import secret_bytes
from sharewise.plugin.tenants import TenantsError, parse_tenants


def test_tenants_add_prints_a_valid_block():
    result = CliRunner().invoke(main, ["tenants", "add", "eastmoor", "--name", "Eastmoor"])
    assert result.exit_code == 0, result.output
    tenants = parse_tenants(tomllib.loads(result.output))
    t = tenants["eastmoor"]
    assert t.name == "Eastmoor" and len(secret_bytes(t.webhook_secrets[0])) == 32
    second = CliRunner().invoke(main, ["tenants", "add", "eastmoor"]).output
    again = parse_tenants(tomllib.loads(second))
    assert again["eastmoor"].webhook_secrets != t.webhook_secrets


def test_tenants_add_refuses_bad_slug():
    result = CliRunner().invoke(main, ["tenants", "add", "Bad Slug"])
    assert result.exit_code != 0 and "slug" in result.output


def test_rotation_list_and_defaults():
    t = parse_tenants({"tenants": {"a": {"webhook_secrets": ["whsec_AAAA", "whsec_BBBB"]}}})["a"]
    assert t.webhook_secrets == ("whsec_AAAA", "whsec_BBBB") and t.timezone == "Europe/London"


@pytest.mark.parametrize("raw", [
    {"name": "x"},
    {"webhook_secret": "whsec_!!notbase64"},
    {"webhook_secret": "whsec_AAAA", "timezone": "Mars/Olympus"},
    {"webhook_secret": "whsec_AAAA", "callback_url": "file:///etc/passwd"},
    {"webhook_secret": "whsec_AAAA", "form_version": 3},
    {"webhook_secret": "whsec_AAAA", "form_version": True},
    {"webhook_secret": "whsec_AAAA", "public_authority": "yes"},
    {"webhook_secret": "whsec_AAAA", "dpia_reference": 14},
    {"webhook_secret": "whsec_AAAA", "sharing_agreements": "MASH"},
    {"webhook_secret": "whsec_AAAA", "sharing_agreements": [{"code": "a b", "title": "x"}]},
    {"webhook_secret": "whsec_AAAA", "sharing_agreements": [{"code": "none", "title": "x"}]},
    {"webhook_secret": "whsec_AAAA", "sharing_agreements": [{"code": "a", "title": ""}]},
    {"webhook_secret": "whsec_AAAA", "sharing_agreements": [{"code": "a", "title": "x"},
                                                            {"code": "a", "title": "y"}]},
])
def test_invalid(raw):
    with pytest.raises(TenantsError):
        parse_tenants({"tenants": {"a": raw}})


def test_the_request_email_is_on_unless_switched_off():
    on = parse_tenants({"tenants": {"a": {"webhook_secret": "whsec_AAAA"}}})["a"]
    off = parse_tenants({"tenants": {"a": {"webhook_secret": "whsec_AAAA",
                                           "notify_on_request": False}}})["a"]
    assert on.notify_on_request is True and off.notify_on_request is False
    with pytest.raises(TenantsError, match="notify_on_request must be true or false"):
        parse_tenants({"tenants": {"a": {"webhook_secret": "whsec_AAAA",
                                         "notify_on_request": "no"}}})


def test_example_file_parses():
    with open("config/tenants.example.toml", "rb") as f:
        t = parse_tenants(tomllib.load(f))["northshire"]
    assert t.form_version == 2 and t.public_authority is True
    assert t.sharing_agreements[0][0] == "mash_2024" and t.dpia_reference


def test_form_keys_default_to_version_2_a_public_authority_and_no_agreements():
    t = parse_tenants({"tenants": {"a": {"webhook_secret": "whsec_AAAA"}}})["a"]
    assert (t.form_version, t.public_authority, t.dpia_reference, t.sharing_agreements) == (
        2, True, None, ())
    held = parse_tenants({"tenants": {"a": {"webhook_secret": "whsec_AAAA",
                                            "form_version": 1}}})["a"]
    assert held.form_version == 1


def test_demo_tenants_file_written_once(tmp_path):
    from sharewise.plugin.tenants import load_tenants, write_demo_tenants

    path = tmp_path / "var" / "tenants.toml"
    write_demo_tenants(path, "http://127.0.0.1:8000")
    first = path.read_text()
    write_demo_tenants(path, "http://127.0.0.1:9999")
    assert path.read_text() == first
    demo = load_tenants(path)["demo"]
    assert demo.callback_url == "http://127.0.0.1:8000/demo-host/callback"
    assert [p.name for p in path.parent.iterdir()] == ["tenants.toml"]
