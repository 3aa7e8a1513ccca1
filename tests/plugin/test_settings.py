"""Settings: one typed, frozen object built from defaults, a mapping and the environment;
derived values; the embedded secret key; the README table generated from the definitions."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from sharewise.plugin import settings
from sharewise.plugin.cli import README_END, README_START, main
from sharewise.plugin.outbox.schedule import STANDARD_SCHEDULE
from sharewise.plugin.settings import SettingsError


def test_defaults_and_derived(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = settings.build(environ={})
    data = tmp_path / "var"
    assert s.data_dir == data
    assert s.database_url == f"sqlite:///{data}/sharewise.db"
    assert s.broker_url == f"sqla+sqlite:///{data}/broker.db"
    assert s.storage_url == f"{data}/files"
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.tenants == data / "tenants.toml"
    assert s.max_body_bytes == 12 * 1024 * 1024
    assert s.link_max_age == 30 * 24 * 3600
    assert s.migrate_on_start is True and s.intake_timeout == 30.0
    assert s.delivery_schedule == STANDARD_SCHEDULE  # the outbox's own constant
    assert s.secret_keys == () and s.smtp_ca_file is None
    assert list(tmp_path.iterdir()) == []  # building the settings touches nothing
    key = s.signing_keys()[0]
    assert (data / "secret_key").read_text().strip() == key and len(key) >= 48
    assert settings.build(environ={}).signing_keys() == (key,)  # generated once, then reused


def test_settings_are_frozen_and_typed(tmp_path):
    s = settings.build({"DATA_DIR": str(tmp_path)}, environ={
        "SHAREWISE_PORT": " 9000 ", "SHAREWISE_MIGRATE_ON_START": "Off",
        "SHAREWISE_DELIVERY_SCHEDULE": "0, 1.5,2", "SHAREWISE_LOG_LEVEL": "warning",
        "SHAREWISE_SMTP_TIMEOUT": "2.5", "SHAREWISE_BASE_URL": "https://sw.example/",
        "SHAREWISE_WEB_WORKERS": "",  # empty: unset
    })
    assert (s.port, s.migrate_on_start, s.delivery_schedule) == (9000, False, (0, 1.5, 2))
    assert (s.log_level, s.smtp_timeout, s.web_workers) == ("WARNING", 2.5, 2)
    assert s.base_url == "https://sw.example"
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
    config = s.as_config()
    assert config["PORT"] == 9000 and config["DATA_DIR"] == tmp_path
    again = settings.build(environ=s.environment())
    assert again == s  # what a child process rebuilds from the exported variables


def test_layering_mapping_then_environment(tmp_path):
    env = {"SHAREWISE_PORT": "9123", "SHAREWISE_SECRET_KEYS": "new, old ,",
           "SHAREWISE_MAX_BODY_BYTES": "1000"}
    s = settings.build({"DATA_DIR": str(tmp_path), "PORT": 1, "MAX_BODY_BYTES": 5}, environ=env)
    assert s.port == 9123 and s.base_url == "http://127.0.0.1:9123"
    assert s.secret_keys == ("new", "old") and s.signing_keys() == ("new", "old")
    assert s.max_body_bytes == 1000
    assert not (tmp_path / "secret_key").exists()


def test_relative_paths_are_resolved_once(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    s = settings.build(environ={"SHAREWISE_DATA_DIR": "data", "SHAREWISE_TENANTS": "t.toml",
                                "SHAREWISE_DATABASE_URL": "sqlite:///db/x.db",
                                "SHAREWISE_BROKER_URL": "filesystem://q",
                                "SHAREWISE_STORAGE_URL": "file://pdfs"})
    relative = settings.build(environ={"SHAREWISE_BROKER_URL": "sqla+sqlite:///q.db"})
    monkeypatch.chdir(tmp_path / "b")
    a = tmp_path / "a"
    assert (s.data_dir, s.tenants) == (a / "data", a / "t.toml")
    assert s.database_url == f"sqlite:///{a}/db/x.db"
    assert s.broker_url == f"filesystem://{a}/q" and s.storage_url == f"file://{a}/pdfs"
    assert relative.broker_url == f"sqla+sqlite:///{a}/q.db"


def test_app_config_holds_the_typed_values(app):
    s = settings.settings_of(app)
    assert app.config["MAX_BODY_BYTES"] == s.max_body_bytes == app.config["MAX_CONTENT_LENGTH"]
    assert isinstance(app.config["LINK_MAX_AGE"], int)
    assert isinstance(app.config["INTAKE_TIMEOUT"], float)
    assert app.config["SECRET_KEYS"] == ("test-link-key",) == s.secret_keys
    assert app.config["SECRET_KEY"] == "test-link-key" and app.config["TESTING"] is True
    changed = settings.update(app, reminder_max_retries=3)
    assert settings.settings_of(app) is changed and app.config["REMINDER_MAX_RETRIES"] == 3


@pytest.mark.parametrize("word", ["maybe", "2", "tru", "enabled", "none"])
def test_unknown_boolean_is_refused(word):
    with pytest.raises(SettingsError) as err:
        settings.build(environ={"SHAREWISE_MIGRATE_ON_START": word})
    assert str(err.value) == ("SHAREWISE_MIGRATE_ON_START must be true or false (or 1/0, "
                              f"yes/no, on/off), got '{word}'")


@pytest.mark.parametrize("word,value", [("true", True), ("1", True), ("YES", True), ("on", True),
                                        ("false", False), ("0", False), ("No", False),
                                        ("off", False)])
def test_known_booleans(word, value):
    assert settings.build(environ={"SHAREWISE_MIGRATE_ON_START": word}).migrate_on_start is value


@pytest.mark.parametrize("key,value,message", [
    ("PORT", "abc", "SHAREWISE_PORT must be an integer from 1 to 65535, got 'abc'"),
    ("PORT", "70000", "SHAREWISE_PORT must be an integer from 1 to 65535, got '70000'"),
    ("WEB_WORKERS", "1.5", "SHAREWISE_WEB_WORKERS must be an integer of at least 1, got '1.5'"),
    ("DELIVERY_TIMEOUT", "0", "SHAREWISE_DELIVERY_TIMEOUT must be a number of seconds above 0"),
    ("DELIVERY_JITTER", "nan", "SHAREWISE_DELIVERY_JITTER must be a fraction from 0 to 1"),
    ("DELIVERY_SCHEDULE", "0,x", "SHAREWISE_DELIVERY_SCHEDULE must be comma-separated seconds"),
    ("LOG_LEVEL", "loud", "SHAREWISE_LOG_LEVEL must be one of DEBUG, INFO, WARNING"),
    ("BASE_URL", "sw.example", "SHAREWISE_BASE_URL must be an http:// or https:// URL"),
    ("BROKER_URL", "kafka://k", "SHAREWISE_BROKER_URL must be a broker URL"),
    ("DATABASE_URL", "mysql://u:hunter2@h/db",
     "SHAREWISE_DATABASE_URL must be an SQLAlchemy URL: sqlite:///<file> or postgresql+psycopg://"
     "user:pass@host/db, got 'mysql://u:***@h/db'"),
    ("SMTP_URL", "smtp://u:hunter2@:25", "got 'smtp://u:***@:25'"),
])
def test_bad_values_name_the_variable_the_value_and_the_expectation(key, value, message):
    with pytest.raises(SettingsError) as err:
        settings.build(environ={f"SHAREWISE_{key}": value})
    text = str(err.value)
    assert message in text and "\n" not in text and "hunter2" not in text


def test_a_bad_value_from_the_mapping_is_refused_too():
    with pytest.raises(SettingsError, match="SHAREWISE_MAX_BODY_BYTES must be an integer"):
        settings.build({"MAX_BODY_BYTES": True}, environ={})


def test_mask_url():
    assert settings.mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert settings.mask_url("postgresql+psycopg://u:p%40w@h/db") == (
        "postgresql+psycopg://u:***@h/db")
    assert settings.mask_url("sqlite:////x/y.db") == "sqlite:////x/y.db"


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


def test_every_setting_is_documented_and_its_default_is_valid():
    for d in settings.definitions():
        assert d.doc.strip(), d.key
    settings.build(environ={})  # every default parses


def test_settings_readme_rewrites_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nSTALE-TABLE\n{README_END}\n\nafter\n")
    result = CliRunner().invoke(main, ["settings", "--readme", str(readme)])
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "STALE-TABLE" not in text and text.endswith(f"{README_END}\n\nafter\n")
    assert "| `SHAREWISE_DATA_DIR` | `./var` |" in text


def test_readme_table_is_the_generated_one():
    text = Path("README.md").read_text()
    table = text[text.index(README_START) + len(README_START):text.index(README_END)].strip()
    assert table == settings.markdown_table(), "run `sharewise settings --readme README.md`"
    assert "INTAKE_WRITER" not in text and "INTAKE_MAX_BATCH" not in text
