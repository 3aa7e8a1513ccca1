"""The file store contract, run against the local store and S3 (a real S3 API: moto's server).

The S3 tests talk HTTP to ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port,
through the same boto3 client code production uses (``SHAREWISE_S3_ENDPOINT_URL``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import uuid

import pytest

from sharewise.plugin.storage import (
    InvalidKey,
    NotFound,
    Storage,
    StorageError,
    storage_from_url,
)
from sharewise.plugin.storage.local import LocalStorage
from sharewise.plugin.storage.s3 import ENDPOINT_ENV, S3Storage

BUCKET = "sharewise-test"


def make_bucket(client, bucket: str) -> None:
    """Create a bucket; botocore may retry a create the slow server already did (load on CI)."""
    try:
        client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-2",
}


@pytest.fixture
def s3_store(moto_endpoint, request):
    # a fresh bucket per test, so tests cannot see each other's objects
    bucket = f"{BUCKET}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]}"
    store = S3Storage(bucket, "tenant-files/pdfs", endpoint_url=moto_endpoint)
    make_bucket(store.client, bucket)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    return request.getfixturevalue("s3_store")


def test_put_get_exists_size_delete(store: Storage):
    key = "northshire/SR-ABC/prefill-1.pdf"
    assert not store.exists(key)
    store.put(key, b"%PDF-1.7 first")
    assert store.exists(key)
    assert store.get(key) == b"%PDF-1.7 first"
    assert store.size(key) == len(b"%PDF-1.7 first")
    with store.open(key) as fh:
        assert fh.read() == b"%PDF-1.7 first"
    store.put(key, b"%PDF-1.7 second, longer")
    assert store.get(key) == b"%PDF-1.7 second, longer"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting twice is not an error


def test_missing_key_is_not_found(store: Storage):
    with pytest.raises(NotFound):
        store.get("northshire/none.pdf")
    with pytest.raises(NotFound):
        store.open("northshire/none.pdf")
    with pytest.raises(NotFound):
        store.size("northshire/none.pdf")


@pytest.mark.parametrize("key", ["", "../etc/passwd", "/abs/key", "a/../b", "a//b", "a b"])
def test_keys_that_leave_the_store_are_refused(store: Storage, key: str):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.exists(key)


def test_binary_content_round_trips_exactly(store: Storage):
    data = bytes(range(256)) * 4096 + b"\r\n\x00tail"
    store.put("t/r/blob.pdf", data)
    assert hashlib.sha256(store.get("t/r/blob.pdf")).digest() == hashlib.sha256(data).digest()


def test_readers_never_see_a_half_written_object(store: Storage):
    """A writer replaces a 3 MB object again and again; readers only ever see a whole one."""
    key = "northshire/SR-RACE/final.pdf"
    versions = [bytes([i]) * (3 * 1024 * 1024) for i in (0x41, 0x42, 0x43)]
    digests = {hashlib.sha256(v).hexdigest() for v in versions}
    store.put(key, versions[0])
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                store.put(key, versions[i % len(versions)])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(15):
            seen.append(hashlib.sha256(store.get(key)).hexdigest())
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    assert set(seen) <= digests, "a reader saw a partial or mixed object"


def test_local_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "files")
    store.put("t/r/a.pdf", b"old")

    def boom(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(StorageError, match="write failed: ENOSPC"):
        store.put("t/r/a.pdf", b"new content that never lands")
    monkeypatch.undo()
    assert store.get("t/r/a.pdf") == b"old"
    assert sorted(p.name for p in (tmp_path / "files" / "t" / "r").iterdir()) == ["a.pdf"]


def test_s3_objects_live_under_the_prefix(s3_store: S3Storage):
    s3_store.put("northshire/SR-1/prefill-1.pdf", b"%PDF")
    listed = s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["tenant-files/pdfs/northshire/SR-1/prefill-1.pdf"]
    head = s3_store.client.head_object(
        Bucket=s3_store.bucket, Key="tenant-files/pdfs/northshire/SR-1/prefill-1.pdf"
    )
    assert head["ContentType"] == "application/pdf"


def test_storage_url_selects_s3_with_the_endpoint_from_the_environment(
    moto_endpoint, monkeypatch
):
    monkeypatch.setenv(ENDPOINT_ENV, moto_endpoint)
    store = storage_from_url("s3://sharewise-url-test/some/prefix/")
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix) == ("sharewise-url-test", "some/prefix")
    make_bucket(store.client, "sharewise-url-test")
    store.put("a/b.pdf", b"via url")
    assert store.get("a/b.pdf") == b"via url"


def test_s3_url_without_bucket_is_refused():
    from sharewise.plugin.storage import StorageError

    with pytest.raises(StorageError):
        S3Storage.from_url("s3:///prefix")


def test_the_service_keeps_its_pdfs_in_s3(moto_endpoint, monkeypatch, app_config):
    """The whole path on S3: intake stores the prefilled PDF, an upload its bytes, both in
    the bucket, and the download serves them back from there."""
    from sharewise.plugin.app import create_app
    from sharewise.plugin.crypto import is_sealed
    from sharewise.plugin.db import engine_for
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.storage import storage
    from sharewise.plugin.tenants import get_tenant

    monkeypatch.setenv(ENDPOINT_ENV, moto_endpoint)
    bucket = f"sharewise-service-{uuid.uuid4().hex[:8]}"
    make_bucket(S3Storage(bucket, endpoint_url=moto_endpoint).client, bucket)
    app = create_app({**app_config, "STORAGE_URL": f"s3://{bucket}/pdfs"})
    try:
        client = app.test_client()
        secret = get_tenant("northshire", app).webhook_secrets[0]
        body, headers = signed_request(secret, sample_event())
        made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
        rid = made["record_id"]
        base = app.config["BASE_URL"]
        pdf = client.get(made["form_pdf_url"].removeprefix(base))
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
        resp = client.post(made["upload_url"].removeprefix(base), data=pdf.data,
                           headers={"Content-Type": "application/pdf",
                                    "Accept": "application/json"})
        assert resp.status_code == 200 and resp.get_json()["status"] == "incomplete"
        store = S3Storage(bucket, "pdfs", endpoint_url=moto_endpoint)
        keys = [o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert f"pdfs/northshire/{rid}/prefill-1.pdf" in keys
        [upload_key] = [k for k in keys if "/upload-" in k]
        sealed = store.get(upload_key.removeprefix("pdfs/"))
        assert is_sealed(sealed) and b"%PDF" not in sealed  # encrypted in the bucket too
        assert storage(app).get(upload_key.removeprefix("pdfs/")) == pdf.data
        again = client.get(made["form_pdf_url"].removeprefix(base))
        assert again.data == pdf.data  # their own upload, read back from S3
    finally:
        engine_for(app).dispose()
