"""Signed links: purposes, expiry, tampering, key rotation, and :func:`links.load_token`'s
contract on tokens signed with the service's key that the service never made."""

from __future__ import annotations

import pytest
import time_machine
from flask import Flask
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from sharewise.plugin import links
from sharewise.plugin.records.models import new_public_id
from sharewise.plugin.tenants import SLUG
from tests.plugin.forged import GOOD_ID, forge, hostile_cases, hostile_token

ID = GOOD_ID
OTHER_ID = "SR-ZYXWVUTSRQPONMLK"


@pytest.fixture
def ctx():
    app = Flask(__name__)
    app.config.update(SECRET_KEYS=["test-link-key"], LINK_MAX_AGE=30 * 24 * 3600,
                      BASE_URL="http://sharewise.test")
    with app.app_context():
        yield app


def test_roundtrip_and_purpose(ctx):
    token = links.make_token("northshire", ID, "form")
    assert links.load_token(token, "form") == ("northshire", ID)
    with pytest.raises(links.LinkWrongPurpose):
        links.load_token(token, "pdf")


def test_tampered(ctx):
    token = links.make_token("northshire", ID, "status")
    with pytest.raises(links.LinkInvalid):
        links.load_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "status")
    with pytest.raises(links.LinkInvalid):
        links.load_token("garbage", "status")


def test_expired(ctx):
    with time_machine.travel("2026-01-01T00:00:00Z"):
        token = links.make_token("northshire", ID, "form")
    with time_machine.travel("2026-02-01T00:00:00Z"):  # 31 days later, max age 30 days
        with pytest.raises(links.LinkExpired):
            links.load_token(token, "form")


def test_key_rotation(ctx):
    token = links.make_token("northshire", ID, "form")
    ctx.config["SECRET_KEYS"] = ["new-key", "test-link-key"]
    assert links.load_token(token, "form") == ("northshire", ID)
    fresh = links.make_token("northshire", ID, "form")
    ctx.config["SECRET_KEYS"] = ["new-key"]
    assert links.load_token(fresh, "form") == ("northshire", ID)
    with pytest.raises(links.LinkInvalid):
        links.load_token(token, "form")


def test_make_links_are_absolute(ctx):
    rec = type("R", (), {"tenant": "northshire", "public_id": ID})()
    urls = links.make_links(rec)
    assert set(urls) == {"form_url", "form_pdf_url", "upload_url", "status_url"}
    assert all(u.startswith("http://sharewise.test/") for u in urls.values())


def test_tokens_are_plain_itsdangerous_both_ways(ctx):
    """Tokens are itsdangerous' own: plain itsdangerous loads ours and we load its."""
    plain = URLSafeTimedSerializer(["test-link-key"], salt="sharewise.link.upload")
    ours = links.make_token("northshire", ID, "upload")
    assert plain.loads(ours) == {"t": "northshire", "r": ID}
    theirs = plain.dumps({"t": "northshire", "r": OTHER_ID})
    assert links.load_token(theirs, "upload") == ("northshire", OTHER_ID)
    with pytest.raises(links.LinkWrongPurpose):
        links.load_token(theirs, "status")
    # several keys: each one's derived key is kept apart (rotation still verifies both)
    ctx.config["SECRET_KEYS"] = ["new-key", "test-link-key"]
    assert links.load_token(ours, "upload") == ("northshire", ID)
    rotated = links.make_token("northshire", ID, "upload")
    assert URLSafeTimedSerializer(["new-key"], salt="sharewise.link.upload").loads(rotated)


def test_links_for_match_make_token(ctx):
    urls = links.links_for("northshire", ID)
    for purpose, key in links.URL_KEYS.items():
        token = urls[key].rsplit("/", 2)[-2 if purpose == "pdf" else -1]
        assert links.load_token(token, purpose) == ("northshire", ID)




@pytest.mark.parametrize("keys", [["test-link-key"], ["new-key", "old-key"]])
def test_every_link_is_plain_itsdangerous_token_signed_now_with_the_first_key(ctx, keys):
    ctx.config["SECRET_KEYS"] = keys
    with time_machine.travel("2026-03-01T12:00:00Z", tick=False):
        urls = links.links_for("northshire", ID)
        for purpose in links.PURPOSES:
            plain = URLSafeTimedSerializer([keys[0]], salt=f"sharewise.link.{purpose}")
            expected = links.PATHS[purpose].format(token=plain.dumps({"t": "northshire",
                                                                      "r": ID}))
            assert urls[links.URL_KEYS[purpose]] == ctx.config["BASE_URL"] + expected


def test_links_are_signed_afresh_each_time(ctx):
    with time_machine.travel("2026-03-01T12:00:00Z", tick=False):
        first = links.links_for("northshire", ID)
    with time_machine.travel("2026-03-01T12:00:05Z", tick=False):
        again = links.links_for("northshire", ID)
    assert again != first
    for purpose, key in links.URL_KEYS.items():
        token = again[key].rsplit("/", 2)[-2 if purpose == "pdf" else -1]
        _payload, signed = URLSafeTimedSerializer(
            ["test-link-key"], salt=f"sharewise.link.{purpose}").loads(token,
                                                                       return_timestamp=True)
        assert signed.isoformat() == "2026-03-01T12:00:05+00:00"


def test_issued_at_is_gone(ctx):
    assert not hasattr(links, "issued_now")
    with pytest.raises(TypeError):
        links.links_for("northshire", ID, issued_at=0)  # type: ignore[call-arg]


def test_the_longest_token_the_service_makes_is_never_compressed_and_loads(ctx):
    """itsdangerous would compress a payload that shrinks (a slug of one repeated letter):
    the service never does, so a compressed payload can be refused."""
    slug = "a" * 63
    assert SLUG.match(slug)
    for purpose in links.PURPOSES:
        token = links.make_token(slug, ID, purpose)
        assert not token.startswith(".")
        assert len(token) <= links.MAX_TOKEN_LENGTH
        assert links.load_token(token, purpose) == (slug, ID)


def test_ids_the_service_makes_load(ctx):
    for _ in range(50):
        rid = new_public_id()
        assert links.load_token(links.make_token("northshire", rid, "pdf"), "pdf") == (
            "northshire", rid)
    for slug in ("a", "0", "north_shire-2", "z" * 63):
        assert links.load_token(links.make_token(slug, ID, "form"), "form") == (slug, ID)


def test_the_serializer_refuses_a_compressed_payload(ctx):
    with pytest.raises(BadData):
        links._serializer("form").load_payload(b".eJyrVkpUslIqSUxPLVLSUSpILMrMS1GyUlIqS8wpTVWq")


def test_a_forged_token_of_the_services_own_shape_loads(ctx):
    """The forging helper itself makes what the service accepts (so its refusals mean
    something)."""
    import json

    good = json.dumps({"t": "northshire", "r": ID}).encode()
    assert links.load_token(forge("test-link-key", "status", good), "status") == (
        "northshire", ID)
    with pytest.raises(links.LinkWrongPurpose):
        links.load_token(forge("test-link-key", "form", good), "status")
    with pytest.raises(links.LinkExpired):
        links.load_token(forge("test-link-key", "status", good, timestamp=1000), "status")


@pytest.mark.parametrize("bound", ["default", "unbounded"])
@pytest.mark.parametrize(("cls", "case"), hostile_cases())
def test_load_token_refuses_every_hostile_token_as_invalid(ctx, monkeypatch, cls, case, bound):
    """Signed with the service's key (or not a token at all): always LinkInvalid, for the
    token's own purpose and every other one; with the length bound lifted too, so the later
    checks hold on their own."""
    if bound == "unbounded":
        if case == "signed_long_payload":
            pytest.skip("a well-formed payload padded with spaces: refused by the bound only")
        monkeypatch.setattr(links, "MAX_TOKEN_LENGTH", 10**9)
    for signed_for in links.PURPOSES:
        token = hostile_token("test-link-key", signed_for, cls, case)
        for purpose in links.PURPOSES:
            with pytest.raises(links.LinkInvalid):
                links.load_token(token, purpose)


def test_load_token_raises_only_link_errors_on_odd_input(ctx):
    for token in ("", "é.é.é", "\ud800.a.b", "a" * 257, "A.B.C", None, b"bytes.are.no"):
        with pytest.raises(links.LinkInvalid):
            links.load_token(token, "form")  # type: ignore[arg-type]


def test_a_future_dated_genuine_token_is_invalid_not_expired_or_wrong_purpose(ctx):
    import json
    import time

    good = json.dumps({"t": "northshire", "r": ID}).encode()
    ahead = forge("test-link-key", "form", good, timestamp=int(time.time()) + 120)
    for purpose in links.PURPOSES:
        with pytest.raises(links.LinkInvalid):
            links.load_token(ahead, purpose)


def test_an_expired_token_with_a_hostile_payload_is_invalid(ctx):
    with pytest.raises(links.LinkInvalid):
        links.load_token(forge("test-link-key", "form", b"[1]", timestamp=1000), "form")
    signer = TimestampSigner("test-link-key", salt="sharewise.link.form")
    assert signer.validate(forge("test-link-key", "form", b"[1]", timestamp=1000))


def test_signer_is_itsdangerous_key_rotation_for_any_salt(ctx):
    """:func:`links.signer` is itsdangerous' key rotation over ``SECRET_KEYS`` (oldest first,
    the newest signs): the admin session (``compress=True``, as it always was) and the team
    link give the tokens plain itsdangerous reads, and still load the old key's."""
    digest = "ab" * 32
    for salt, compress in (("sharewise.admin-session", True), ("sharewise.link.team", False)):
        ctx.config["SECRET_KEYS"] = ["old-key"]
        old = links.signer(salt, compress=compress).dumps(digest)
        ctx.config["SECRET_KEYS"] = ["new-key", "old-key"]
        plain = URLSafeTimedSerializer(["old-key", "new-key"], salt=salt)
        with time_machine.travel("2026-03-01T12:00:00Z", tick=False):
            ours = links.signer(salt, compress=compress).dumps(digest)
            assert ours.startswith(".") is compress
            assert URLSafeTimedSerializer(["new-key"], salt=salt).loads(ours) == digest
            if compress:
                assert ours == plain.dumps(digest)
        assert links.signer(salt, compress=compress).loads(old) == digest
    assert links.signer("sharewise.link.form") is links._serializer("form")
