"""Settings layering (defaults, mapping, environment), derived values, the embedded secret key."""

from __future__ import annotations

import threading
from pathlib import Path

from click.testing import CliRunner

from sharewise.plugin import settings
from sharewise.plugin.cli import README_END, README_START, main


def test_defaults_and_derived(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = settings.load()
    data = tmp_path / "var"
    assert cfg["DATA_DIR"] == str(data)
    assert cfg["DATABASE_URL"] == f"sqlite:///{data}/sharewise.db"
    assert cfg["BROKER_URL"] == f"filesystem://{data}/broker"
    assert cfg["STORAGE_URL"] == f"{data}/files"
    assert cfg["BASE_URL"] == "http://127.0.0.1:8000"
    assert cfg["TENANTS"] == str(tmp_path / "config" / "tenants.toml")
    assert cfg["MAX_BODY_BYTES"] == 12 * 1024 * 1024 == cfg["MAX_CONTENT_LENGTH"]
    assert cfg["LINK_MAX_AGE"] == 30 * 24 * 3600
    key = (data / "secret_key").read_text().strip()
    assert cfg["SECRET_KEYS"] == [key] and len(key) >= 48
    assert settings.load()["SECRET_KEYS"] == [key]  # generated once, then reused


def test_layering_mapping_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAREWISE_PORT", "9123")
    monkeypatch.setenv("SHAREWISE_SECRET_KEYS", "new, old ,")
    monkeypatch.setenv("SHAREWISE_MAX_BODY_BYTES", "1000")
    cfg = settings.load({"DATA_DIR": str(tmp_path), "PORT": 1, "MAX_BODY_BYTES": 5})
    assert cfg["PORT"] == 9123 and cfg["BASE_URL"] == "http://127.0.0.1:9123"
    assert cfg["SECRET_KEYS"] == ["new", "old"]
    assert cfg["MAX_BODY_BYTES"] == 1000
    assert not (tmp_path / "secret_key").exists()


def test_secret_key_race(tmp_path):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(settings.ensure_secret_key(tmp_path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_every_setting_is_documented():
    for s in settings.settings():
        assert s.doc.strip(), s.key


def test_settings_readme_rewrites_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nSTALE-TABLE\n{README_END}\n\nafter\n")
    result = CliRunner().invoke(main, ["settings", "--readme", str(readme)])
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "STALE-TABLE" not in text and text.endswith(f"{README_END}\n\nafter\n")
    assert "| `SHAREWISE_DATA_DIR` | `./var` |" in text


def test_readme_lists_every_setting():
    text = Path("README.md").read_text()
    missing = [s.env for s in settings.settings() if f"`{s.env}`" not in text]
    assert not missing, f"run `sharewise settings --readme README.md`; missing: {missing}"
