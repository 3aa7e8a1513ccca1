"""Signed links: purposes, expiry, tampering, key rotation."""

from __future__ import annotations

import pytest
import time_machine
from flask import Flask

from sharewise.plugin import links


@pytest.fixture
def ctx():
    app = Flask(__name__)
    app.config.update(SECRET_KEYS=["test-link-key"], LINK_MAX_AGE=30 * 24 * 3600,
                      BASE_URL="http://sharewise.test")
    with app.app_context():
        yield app


def test_roundtrip_and_purpose(ctx):
    token = links.make_token("northshire", "SR-ABC", "form")
    assert links.load_token(token, "form") == ("northshire", "SR-ABC")
    with pytest.raises(links.LinkWrongPurpose):
        links.load_token(token, "pdf")


def test_tampered(ctx):
    token = links.make_token("northshire", "SR-ABC", "status")
    with pytest.raises(links.LinkInvalid):
        links.load_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "status")
    with pytest.raises(links.LinkInvalid):
        links.load_token("garbage", "status")


def test_expired(ctx):
    with time_machine.travel("2026-01-01T00:00:00Z"):
        token = links.make_token("northshire", "SR-ABC", "form")
    with time_machine.travel("2026-02-01T00:00:00Z"):  # 31 days later, max age 30 days
        with pytest.raises(links.LinkExpired):
            links.load_token(token, "form")


def test_key_rotation(ctx):
    token = links.make_token("northshire", "SR-ABC", "form")
    ctx.config["SECRET_KEYS"] = ["new-key", "test-link-key"]
    assert links.load_token(token, "form") == ("northshire", "SR-ABC")
    fresh = links.make_token("northshire", "SR-ABC", "form")
    ctx.config["SECRET_KEYS"] = ["new-key"]
    assert links.load_token(fresh, "form") == ("northshire", "SR-ABC")
    with pytest.raises(links.LinkInvalid):
        links.load_token(token, "form")


def test_make_links_are_absolute(ctx):
    rec = type("R", (), {"tenant": "northshire", "public_id": "SR-ABC"})()
    urls = links.make_links(rec)
    assert set(urls) == {"form_url", "form_pdf_url", "upload_url", "status_url"}
    assert all(u.startswith("http://sharewise.test/") for u in urls.values())


def test_tokens_are_plain_itsdangerous_both_ways(ctx):
    """The kept derived keys and OpenSSL's HMAC change no byte of a token."""
    from itsdangerous import URLSafeTimedSerializer

    plain = URLSafeTimedSerializer(["test-link-key"], salt="sharewise.link.upload")
    ours = links.make_token("northshire", "SR-ABC", "upload")
    assert plain.loads(ours) == {"t": "northshire", "r": "SR-ABC"}
    theirs = plain.dumps({"t": "northshire", "r": "SR-XYZ"})
    assert links.load_token(theirs, "upload") == ("northshire", "SR-XYZ")
    with pytest.raises(links.LinkWrongPurpose):
        links.load_token(theirs, "status")
    # several keys: each one's derived key is kept apart (rotation still verifies both)
    ctx.config["SECRET_KEYS"] = ["new-key", "test-link-key"]
    assert links.load_token(ours, "upload") == ("northshire", "SR-ABC")
    rotated = links.make_token("northshire", "SR-ABC", "upload")
    assert URLSafeTimedSerializer(["new-key"], salt="sharewise.link.upload").loads(rotated)


def test_links_for_match_make_token(ctx):
    urls = links.links_for("northshire", "SR-ABC")
    for purpose, key in links.URL_KEYS.items():
        token = urls[key].rsplit("/", 2)[-2 if purpose == "pdf" else -1]
        assert links.load_token(token, purpose) == ("northshire", "SR-ABC")


def test_tokens_are_signed_and_checked_with_signers_made_once(ctx, monkeypatch):
    """make_token and load_token reuse one signer per purpose and derive each key once."""
    from itsdangerous import Signer

    derived = []
    real = Signer.derive_key

    def counting(self, secret_key=None):
        derived.append(secret_key)
        return real(self, secret_key)

    monkeypatch.setattr(Signer, "derive_key", counting)
    ctx.config["SECRET_KEYS"] = ["new-key", "old-key"]  # a fresh cache entry for these keys
    tokens = [links.make_token("northshire", f"SR-{i}", "form") for i in range(5)]
    assert all(links.load_token(t, "form") == ("northshire", f"SR-{i}")
               for i, t in enumerate(tokens))
    assert len(derived) <= 2  # one derivation per key, not one per token


def test_links_made_again_at_their_issue_time_are_the_same_bytes(ctx, monkeypatch):
    """The same record, keys and issue time give the same links: itsdangerous' own token
    for that second, loadable by plain itsdangerous, which reports that second."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    issued = links.issued_now() - 3600
    first = links.links_for("northshire", "SR-ABC", issued_at=issued)
    assert links.links_for("northshire", "SR-ABC", issued_at=issued) == first
    assert links.links_for("northshire", "SR-ABC", issued_at=issued + 1) != first
    # plain itsdangerous, its clock stopped at that second, makes the very same token
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued)
    plain = URLSafeTimedSerializer(["test-link-key"], salt="sharewise.link.status")
    assert first["status_url"].endswith("/status/" + plain.dumps({"t": "northshire",
                                                                  "r": "SR-ABC"}))
    token = first["status_url"].rsplit("/", 1)[-1]
    payload, at = plain.loads(token, return_timestamp=True)
    assert payload == {"t": "northshire", "r": "SR-ABC"}
    assert int(at.timestamp()) == issued


@pytest.mark.parametrize("keys", [["test-link-key"], ["new-key", "old-key"]])
def test_every_link_is_plain_itsdangerous_token_signed_with_the_first_key(ctx, monkeypatch,
                                                                           keys):
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    ctx.config["SECRET_KEYS"] = keys
    issued = links.issued_now() - 60
    urls = links.links_for("northshire", "SR-ÄBC", issued_at=issued)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued)
    for purpose in links.PURPOSES:
        plain = URLSafeTimedSerializer([keys[0]], salt=f"sharewise.link.{purpose}")
        expected = links.PATHS[purpose].format(token=plain.dumps({"t": "northshire",
                                                                  "r": "SR-ÄBC"}))
        assert urls[links.URL_KEYS[purpose]] == ctx.config["BASE_URL"] + expected
