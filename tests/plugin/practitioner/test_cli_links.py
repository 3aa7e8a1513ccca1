"""``sharewise links RECORD_ID`` prints fresh links that open the record."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tests.plugin.uploads.journey import create_record, path_of


@pytest.fixture
def made(app, signed_post, sample_event):
    return create_record(signed_post, sample_event)


def test_sharewise_links_prints_fresh_working_links(app, client, made, monkeypatch):
    from sharewise.plugin.cli import main

    for key in ("DATA_DIR", "TENANTS", "DATABASE_URL", "BASE_URL", "STORAGE_URL",
                "BROKER_URL"):
        monkeypatch.setenv(f"SHAREWISE_{key}", str(app.config[key]))
    monkeypatch.setenv("SHAREWISE_SECRET_KEYS", ",".join(app.config["SECRET_KEYS"]))
    result = CliRunner().invoke(main, ["links", made["record_id"]])
    assert result.exit_code == 0, result.output
    urls = dict(re.findall(r"^\s+(\w+_url)\s+(\S+)$", result.output, re.M))
    assert set(urls) == {"form_url", "form_pdf_url", "upload_url", "status_url"}
    assert client.get(path_of(urls["form_url"])).status_code == 200
    assert client.get(path_of(urls["form_pdf_url"])).mimetype == "application/pdf"
    assert "These links stop working in 30 day(s)." in result.output

    missing = CliRunner().invoke(main, ["links", "SR-NOSUCHRECORD"])
    assert missing.exit_code == 1
    assert "no record 'SR-NOSUCHRECORD'" in missing.output
