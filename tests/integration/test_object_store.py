"""Put, get, presign and list against the real S3-compatible server."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from adfame.contracts import BUCKETS, DATASETS_BUCKET
from adfame.storage import ObjectStore, ObjectStoreError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(settings) -> ObjectStore:
    return ObjectStore(settings)


@pytest.fixture()
def prefix(store):
    prefix = f"tests/{uuid.uuid4().hex[:10]}/"
    yield prefix
    for obj in store.list(DATASETS_BUCKET, prefix):
        store.remove(DATASETS_BUCKET, obj.key)


def test_contract_buckets_exist(store) -> None:
    assert set(BUCKETS) <= set(store.list_buckets())


def test_put_get_range_list(store, prefix, tmp_path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = prefix + "blob.bin"
    store.put_bytes(DATASETS_BUCKET, key, data)
    assert store.get_bytes(DATASETS_BUCKET, key) == data
    assert store.get_bytes(DATASETS_BUCKET, key, offset=1000, length=24) == data[1000:1024]
    assert store.stat(DATASETS_BUCKET, key).size == len(data)

    path = tmp_path / "small.txt"
    path.write_text("hello")
    store.put_file(DATASETS_BUCKET, prefix + "small.txt", path, content_type="text/plain")
    assert store.get_file(DATASETS_BUCKET, prefix + "small.txt", tmp_path / "back.txt").read_text() == "hello"
    assert sorted(o.key for o in store.list(DATASETS_BUCKET, prefix)) == [
        prefix + "blob.bin",
        prefix + "small.txt",
    ]
    assert store.stat(DATASETS_BUCKET, prefix + "missing") is None


def test_presigned_url_downloads_over_plain_http(store, prefix) -> None:
    key = prefix + "clip.mp4"
    store.put_bytes(DATASETS_BUCKET, key, b"\x00\x00\x00\x18ftypmp42", content_type="video/mp4")
    url = store.presign_get(DATASETS_BUCKET, key)
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"\x00\x00\x00\x18ftypmp42"
    # Without the signature the store refuses: auth is on.
    assert httpx.get(url.split("?")[0], timeout=10).status_code == 403


def test_errors_name_the_bucket(store) -> None:
    with pytest.raises(ObjectStoreError, match="no-such-bucket-adfame"):
        store.get_bytes("no-such-bucket-adfame", "x")
