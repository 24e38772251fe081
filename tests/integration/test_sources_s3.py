"""A generated mirror copied into the real object store reads back through S3Source like the local folder."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import pytest

from adfame.contracts import DATASETS_BUCKET
from adfame.storage import ObjectStore
from devkit.mirror import OPENVID_CSV, OPENVID_REPO, VIDPROM_CSV, VIDPROM_REPO, generate_mirror, upload_mirror
from etl.sources import LocalSource, S3Source, SourceError, open_source

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(settings) -> ObjectStore:
    return ObjectStore(settings)


@pytest.fixture(scope="module")
def uploaded(store: ObjectStore, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mirror")
    generate_mirror(root, rows=120, clips=4, parts=3, corrupt=1, image_count=2, prompt_rows=40)
    prefix = f"tests/{uuid.uuid4().hex[:10]}/mirror"
    keys = upload_mirror(root, store, DATASETS_BUCKET, prefix)
    yield root, prefix, keys
    for obj in store.list(DATASETS_BUCKET, prefix + "/"):
        store.remove(DATASETS_BUCKET, obj.key)


def test_upload_keeps_the_layout(uploaded) -> None:
    root, prefix, keys = uploaded
    assert keys == sorted(f"{prefix}/{path}" for path in LocalSource(root).list_files())
    assert f"{prefix}/{OPENVID_REPO}/{OPENVID_CSV}" in keys


def test_s3_source_lists_sizes_reads_ranges_and_downloads(
    uploaded, store: ObjectStore, tmp_path: Path
) -> None:
    root, prefix, _ = uploaded
    local = LocalSource(root / OPENVID_REPO)
    source = S3Source(DATASETS_BUCKET, f"{prefix}/{OPENVID_REPO}", store)
    assert source.list_files() == local.list_files()
    assert source.list_files("video_mappings/") == local.list_files("video_mappings/")

    data = (root / OPENVID_REPO / "OpenVid_part0.zip").read_bytes()
    assert source.size("OpenVid_part0.zip") == len(data)
    assert source.read_range("OpenVid_part0.zip", 7, 300) == data[7:307]
    assert source.bytes_fetched == 300

    pieces = source.list_files("OpenVid_part2_")
    assert pieces == ["OpenVid_part2_partaa", "OpenVid_part2_partab"]
    blob = b"".join(source.read_range(p, 0, source.size(p)) for p in pieces)
    assert zipfile.ZipFile(io.BytesIO(blob)).testzip() is None

    csv_path = source.download(OPENVID_CSV, tmp_path)
    assert csv_path.read_bytes() == (root / OPENVID_REPO / OPENVID_CSV).read_bytes()
    with pytest.raises(SourceError, match=r"missing\.csv"):
        source.size("missing.csv")


def test_open_source_reads_an_s3_uri(uploaded, tmp_path: Path) -> None:
    root, prefix, _ = uploaded
    source = open_source(f"s3://{DATASETS_BUCKET}/{prefix}/{VIDPROM_REPO}")
    assert source.list_files() == [VIDPROM_CSV]
    assert (
        source.download(VIDPROM_CSV, tmp_path).read_bytes()
        == (root / VIDPROM_REPO / VIDPROM_CSV).read_bytes()
    )
