"""Local file store: atomic put, get/open/exists/delete, keys cannot escape the root."""

from __future__ import annotations

import pytest

from sharewise.plugin.storage import InvalidKey, NotFound, storage_from_url


def test_roundtrip(tmp_path):
    store = storage_from_url(str(tmp_path / "files"))
    store.put("t/SR-1/prefill-1.pdf", b"%PDF-1")
    assert store.exists("t/SR-1/prefill-1.pdf")
    assert store.get("t/SR-1/prefill-1.pdf") == b"%PDF-1"
    with store.open("t/SR-1/prefill-1.pdf") as f:
        assert f.read() == b"%PDF-1"
    store.put("t/SR-1/prefill-1.pdf", b"%PDF-2")
    assert store.get("t/SR-1/prefill-1.pdf") == b"%PDF-2"
    assert not [p for p in (tmp_path / "files" / "t" / "SR-1").iterdir() if p.name.startswith(".")]
    store.delete("t/SR-1/prefill-1.pdf")
    store.delete("t/SR-1/prefill-1.pdf")
    with pytest.raises(NotFound):
        store.get("t/SR-1/prefill-1.pdf")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "a//b", ".hidden", "a\\b"])
def test_bad_keys(tmp_path, key):
    store = storage_from_url(f"file://{tmp_path}")
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
