"""Tokens signed with the service's own link key but carrying what the service never makes.

``forge(key, purpose, payload)`` signs ``payload`` (raw bytes: the JSON text, or anything else)
with itsdangerous' own :class:`TimestampSigner` under the purpose's salt, exactly as a leaked
or guessed key would let an attacker do; ``timestamp`` may be any non-negative integer and
``compressed`` marks the payload as zlib-compressed (a leading ``.``), which itsdangerous'
URL-safe serializers inflate without a bound.

``HOSTILE_PAYLOADS`` lists such tokens by class; ``HOSTILE_TOKENS`` adds strings that are not
tokens at all (no valid signature). Every one of them must be answered like an invalid link.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable

from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_encode

#: A record id in the format the service makes (``SR-`` and 16 base32 characters).
GOOD_ID = "SR-ABCDEFGHIJKLMNOP"
GOOD = json.dumps({"t": "northshire", "r": GOOD_ID}, separators=(",", ":")).encode()


def forge(key: str, purpose: str, payload: bytes, *, timestamp: int | None = None,
          compressed: bool = False) -> str:
    """``payload`` signed with ``key`` for ``purpose`` at ``timestamp`` (default now)."""
    signer = TimestampSigner(key, salt=f"sharewise.link.{purpose}")
    body = (b"." if compressed else b"") + base64_encode(payload)
    ts = int(time.time()) if timestamp is None else timestamp
    value = body + b"." + base64_encode(ts.to_bytes(max(1, (ts.bit_length() + 7) // 8), "big"))
    return (value + b"." + signer.get_signature(value)).decode("ascii")


def _obj(t: object = "northshire", r: object = GOOD_ID, **more: object) -> bytes:
    return json.dumps({"t": t, "r": r, **more}).encode()


#: class -> {case: (payload, forge keyword arguments)}
HOSTILE_PAYLOADS: dict[str, dict[str, tuple[bytes, dict[str, object]]]] = {
    "not_json": {
        "text": (b"not json at all", {}),
        "empty": (b"", {}),
        "truncated": (GOOD[:-1], {}),
        "nan": (b"NaN", {}),
        "trailing_garbage": (GOOD + b"x", {}),
    },
    "not_an_object": {
        "list": (json.dumps(["northshire", GOOD_ID]).encode(), {}),
        "string": (b'"northshire"', {}),
        "number": (b"1e999", {}),
        "null": (b"null", {}),
        "true": (b"true", {}),
    },
    "bad_values": {
        "tenant_int": (_obj(t=1), {}),
        "record_null": (_obj(r=None), {}),
        "tenant_list": (_obj(t=["northshire"]), {}),
        "record_object": (_obj(r={"r": GOOD_ID}), {}),
        "record_huge_int": (b'{"t":"northshire","r":' + b"9" * 100 + b"}", {}),
        "tenant_bool": (_obj(t=True), {}),
        "lone_surrogate_record": (b'{"t":"northshire","r":"SR-\\ud800BCDEFGHIJKLMNO"}', {}),
        "lone_surrogate_tenant": (b'{"t":"north\\udfffshire","r":"' + GOOD_ID.encode()
                                  + b'"}', {}),
        "lone_surrogate_key": (b'{"t":"northshire","r":"' + GOOD_ID.encode()
                               + b'","\\ud800":1}', {}),
        "nul_in_record": (_obj(r="SR-ABCDEFGH\x00JKLMNOP"), {}),
        "newline_after_tenant": (_obj(t="northshire\n"), {}),
        "newline_after_record": (_obj(r=GOOD_ID + "\n"), {}),
        "tenant_uppercase": (_obj(t="Northshire"), {}),
        "tenant_too_long": (_obj(t="a" * 64), {}),
        "tenant_empty": (_obj(t=""), {}),
        "tenant_sql": (_obj(t="x' OR '1'='1"), {}),
        "record_short": (_obj(r="SR-ABC"), {}),
        "record_lowercase": (_obj(r=GOOD_ID.lower()), {}),
        "record_not_base32": (_obj(r="SR-ABCDEFGHIJKLMN01"), {}),
        "record_non_ascii": (_obj(r="SR-ÄBCDEFGHIJKLMNOP"), {}),
        "record_wildcard": (_obj(r="SR-%"), {}),
        "extra_key": (_obj(x=1), {}),
        "missing_record": (b'{"t":"northshire"}', {}),
        "empty_object": (b"{}", {}),
        "duplicate_key_non_string": (b'{"t":"northshire","r":"' + GOOD_ID.encode()
                                     + b'","r":5}', {}),
    },
    "invalid_utf8": {
        "ff_byte": (b'{"t":"north\xffshire","r":"' + GOOD_ID.encode() + b'"}', {}),
        "overlong": (b'{"t":"\xc0\xafnorthshire","r":"' + GOOD_ID.encode() + b'"}', {}),
        "truncated_sequence": (b'{"t":"northshire\xe2\x82","r":"' + GOOD_ID.encode() + b'"}',
                               {}),
        "encoded_surrogate": (b'{"t":"northshire","r":"SR-\xed\xa0\x80"}', {}),
        "utf16": (GOOD.decode().encode("utf-16"), {}),
    },
    "deep_nesting": {
        "lists_5000": (b"[" * 5000 + b"]" * 5000, {}),
        "objects_3000": (b'{"t":' * 3000 + b"1" + b"}" * 3000, {}),
        "lists_60_short": (b"[" * 60 + b"]" * 60, {}),  # within the token length bound
        "record_nested": (b'{"t":"northshire","r":' + b"[" * 40 + b"]" * 40 + b"}", {}),
    },
    "compression": {
        "zlib_bomb": (zlib.compress(b"[" * 20_000_000, 9), {"compressed": True}),
        "zlib_good_payload": (zlib.compress(GOOD), {"compressed": True}),
        "zlib_not_zlib": (b"not compressed", {"compressed": True}),
    },
    "timestamp": {
        "ten_to_the_30": (GOOD, {"timestamp": 10**30}),
        "two_to_the_64": (GOOD, {"timestamp": 2**64}),
        "year_10000": (GOOD, {"timestamp": 253402300800}),
        "an_hour_ahead": (GOOD, {"timestamp": int(time.time()) + 3600}),
        "huge_and_bad_payload": (b"[" * 50, {"timestamp": 10**30}),
    },
}


def _long_token(key: str, purpose: str) -> str:
    # a correctly signed token whose (well-formed, padded) payload is far over the bound
    return forge(key, purpose, b"{" + b" " * 20_000 + GOOD[1:])


#: class "not_a_token" (no valid signature, or not the shape of a token at all): name ->
#: a function of (key, purpose) giving the token text
NOT_TOKENS: dict[str, Callable[[str, str], str]] = {
    "garbage": lambda k, p: "garbage",
    "two_parts": lambda k, p: "abc.def",
    "four_parts": lambda k, p: forge(k, p, GOOD) + ".x",
    "only_dots": lambda k, p: "...",
    "leading_dot": lambda k, p: "." + forge(k, p, GOOD),
    "padding": lambda k, p: forge(k, p, GOOD).replace(".", "=.", 1),
    "unsigned": lambda k, p: forge("some-other-key", p, GOOD),
    "signed_long_payload": _long_token,
    "ten_thousand_chars": lambda k, p: "A" * 10_000,
    "bad_timestamp_base64": lambda k, p: forge(k, p, GOOD).split(".")[0] + ".!!.xyz",
}


def hostile_cases() -> list[tuple[str, str]]:
    """``(class, case)`` of every payload and not-a-token case."""
    return ([(cls, name) for cls, cases in HOSTILE_PAYLOADS.items() for name in cases]
            + [("not_a_token", name) for name in NOT_TOKENS])


def hostile_token(key: str, purpose: str, cls: str, name: str) -> str:
    """The token of one case, signed (when it is signed) with ``key`` for ``purpose``."""
    if cls == "not_a_token":
        return NOT_TOKENS[name](key, purpose)
    payload, kwargs = HOSTILE_PAYLOADS[cls][name]
    return forge(key, purpose, payload, **kwargs)  # type: ignore[arg-type]
