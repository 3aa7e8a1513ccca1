"""Encryption at rest (issue 18): AES-GCM sealing bound to its context, keys that rotate, the
embedded default key, keyed hashes, and every stored PDF sealed on disk and in S3 alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sharewise.plugin.crypto import (
    DecryptionError,
    Keyring,
    generate_key,
    is_sealed,
    parse_key,
)
from sharewise.plugin.settings import SettingsError, build, ensure_encryption_key
from sharewise.plugin.storage import EncryptedStorage, StorageError
from sharewise.plugin.storage.local import LocalStorage

PDF = b"%PDF-1.7\n" + b"Subject: Ada Lovelace, 10/12/2015\n" * 50


def ring(*keys: str) -> Keyring:
    return Keyring.from_text(keys)


def test_sealed_with_a_fresh_nonce_and_bound_to_its_context():
    keys = ring(generate_key())
    a, b = keys.encrypt(PDF, "file:t/SR-A/x.pdf"), keys.encrypt(PDF, "file:t/SR-A/x.pdf")
    assert a != b and is_sealed(a) and b"Lovelace" not in a  # random nonce per object
    assert keys.decrypt(a, "file:t/SR-A/x.pdf") == PDF
    with pytest.raises(DecryptionError, match="moved or damaged"):
        keys.decrypt(a, "file:t/SR-B/x.pdf")  # moved to another record
    damaged = a[:-1] + bytes([a[-1] ^ 1])
    with pytest.raises(DecryptionError):
        keys.decrypt(damaged, "file:t/SR-A/x.pdf")
    with pytest.raises(DecryptionError, match="not a sealed object"):
        keys.decrypt(PDF, "file:t/SR-A/x.pdf")


def test_old_data_reads_after_a_new_key_is_put_first():
    old, new = generate_key(), generate_key()
    sealed_old = ring(old).encrypt(b"answer", "c")
    rotated = ring(new, old)
    assert rotated.decrypt(sealed_old, "c") == b"answer"
    assert not rotated.is_current(sealed_old)
    assert rotated.is_current(rotated.encrypt(b"answer", "c"))
    with pytest.raises(DecryptionError, match="not configured"):
        ring(new).decrypt(sealed_old, "c")  # the old key removed too early


def test_keyed_hashes_equal_for_equal_values_and_tried_under_every_key():
    old, new = generate_key(), generate_key()
    h = ring(old).keyed_hashes("REQ-4711", "request_id")[0]
    assert h == ring(old).keyed_hashes("REQ-4711", "request_id")[0] and "4711" not in h
    assert h != ring(old).keyed_hashes("REQ-4712", "request_id")[0]
    assert h != ring(old).keyed_hashes("REQ-4711", "subject")[0]  # one purpose per use
    assert ring(new, old).keyed_hashes("REQ-4711", "request_id")[1] == h


@pytest.mark.parametrize("bad", ["short", "A" * 40, "not base64 !", "A" * 88])
def test_bad_keys_stop_start_up_naming_the_setting(tmp_path, bad):
    with pytest.raises(SettingsError, match="ENCRYPTION_KEYS"):
        build({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEYS": bad})


def test_the_embedded_default_generates_one_key_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        first = ensure_encryption_key(tmp_path)
        second = ensure_encryption_key(tmp_path)
    assert first == second and len(parse_key(first)) == 32
    assert (tmp_path / "encryption_key").stat().st_mode & 0o077 == 0  # the owner's only
    said = [r.getMessage() for r in caplog.records if "encryption key" in r.getMessage()]
    assert len(said) == 1 and "back it up" in said[0] and first not in said[0]


def test_the_store_seals_every_object_and_rotation_reseals_it(tmp_path):
    old, new = generate_key(), generate_key()
    inner = LocalStorage(tmp_path / "files")
    store = EncryptedStorage(inner, ring(old))
    store.put("t/SR-A/final-1.pdf", PDF)
    on_disk = (tmp_path / "files" / "t" / "SR-A" / "final-1.pdf").read_bytes()
    assert is_sealed(on_disk) and b"Lovelace" not in on_disk and b"%PDF" not in on_disk
    assert store.get("t/SR-A/final-1.pdf") == PDF
    assert store.open("t/SR-A/final-1.pdf").read() == PDF
    # copied under another record's key, it does not open
    inner.put("t/SR-B/final-1.pdf", on_disk)
    with pytest.raises(StorageError, match="does not decrypt"):
        store.get("t/SR-B/final-1.pdf")
    # a PDF stored before encryption reads as it is, until a rotation seals it
    inner.put("t/SR-C/prefill-1.pdf", PDF)
    rotated = EncryptedStorage(inner, ring(new, old))
    assert rotated.get("t/SR-C/prefill-1.pdf") == PDF
    assert rotated.reseal("t/SR-A/final-1.pdf") and rotated.reseal("t/SR-C/prefill-1.pdf")
    assert not rotated.reseal("t/SR-A/final-1.pdf")  # already current
    assert not rotated.reseal("t/SR-Z/missing.pdf")
    assert EncryptedStorage(inner, ring(new)).get("t/SR-C/prefill-1.pdf") == PDF
    assert EncryptedStorage(inner, ring(new)).get("t/SR-A/final-1.pdf") == PDF
    inner.put("t/SR-D/x.pdf", b"not a pdf and not sealed")
    with pytest.raises(StorageError, match="neither sealed nor a PDF"):
        rotated.get("t/SR-D/x.pdf")


def test_the_apps_pdfs_are_sealed_at_rest(app, signed_post, sample_event):
    from tests.plugin.uploads.journey import create_record, path_of

    made = create_record(signed_post, sample_event)
    pdf = app.test_client().get(path_of(made["form_pdf_url"]))
    assert pdf.data.startswith(b"%PDF-")
    stored = list(Path(app.config["STORAGE_URL"]).rglob("*.pdf"))
    assert stored and all(is_sealed(p.read_bytes()) for p in stored)


def test_keys_rotate_reseals_every_stored_pdf_and_then_the_old_key_can_go(app_config):
    from click.testing import CliRunner

    from sharewise.plugin.app import create_app
    from sharewise.plugin.cli import main
    from sharewise.plugin.crypto import keyring
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.tenants import get_tenant
    from tests.plugin.reminders.test_reminders_cli import env_of
    from tests.plugin.uploads.journey import filled_pdf, partial_answers, path_of

    old, new = generate_key(), generate_key()
    before = create_app({**app_config, "ENCRYPTION_KEYS": old})
    tenant = get_tenant("northshire", before)
    body, headers = signed_request(tenant.webhook_secrets[0], sample_event())
    made = before.test_client().post("/webhooks/northshire", data=body, headers=headers)
    assert made.status_code == 201, made.get_json()
    made = made.get_json()
    client = before.test_client()
    assert client.get(path_of(made["form_pdf_url"])).status_code == 200  # stores the prefill
    pdf = filled_pdf(before, made["record_id"], partial_answers())
    assert client.post(path_of(made["upload_url"]), data=pdf,
                       headers={"Content-Type": "application/pdf"}).status_code == 200
    stored = list(Path(app_config["STORAGE_URL"]).rglob("*.pdf"))
    assert len(stored) == 2

    env = env_of({**app_config, "ENCRYPTION_KEYS": f"{new},{old}"})
    out = CliRunner().invoke(main, ["keys", "rotate", "--batch", "1"], env=env)
    assert out.exit_code == 0, out.output
    assert "2 stored PDF(s) checked, 2 encrypted again" in out.output
    out = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert "2 stored PDF(s) checked, 0 encrypted again" in out.output
    after = create_app({**app_config, "ENCRYPTION_KEYS": new})  # the old key removed
    assert all(keyring(after).is_current(p.read_bytes()) for p in stored)
    download = after.test_client().get(path_of(made["form_pdf_url"]))
    assert download.status_code == 200 and download.data == pdf


def test_keys_generate_prints_a_usable_key():
    from click.testing import CliRunner

    from sharewise.plugin.cli import main

    out = CliRunner().invoke(main, ["keys", "generate"])
    assert out.exit_code == 0 and len(parse_key(out.output.strip())) == 32
