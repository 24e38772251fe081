"""Sources: a local mirror, the real hub client against the mirror server, S3 keys, URI parsing."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import pytest

from adfame.storage import ObjectInfo, ObjectStoreError
from devkit.hub_server import serve_mirror
from devkit.mirror import OPENVID_CSV, OPENVID_REPO, MirrorSummary, generate_mirror
from etl.sources import HubSource, LocalSource, S3Source, SourceError, open_source

SMALL_MIRROR = {"rows": 200, "clips": 4, "parts": 3, "corrupt": 1, "image_count": 1, "prompt_rows": 50}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorSummary:
    return generate_mirror(tmp_path_factory.mktemp("mirror"), **SMALL_MIRROR)


@pytest.fixture(scope="module")
def endpoint(mirror: MirrorSummary):
    with serve_mirror(mirror.root) as url:
        yield url


def _expected_files(mirror: MirrorSummary) -> list[str]:
    return sorted(
        p.relative_to(mirror.openvid_dir).as_posix() for p in mirror.openvid_dir.rglob("*") if p.is_file()
    )


# ---- LocalSource ---------------------------------------------------------------------
def test_local_listing_size_range_and_download(mirror: MirrorSummary, tmp_path: Path) -> None:
    source = LocalSource(mirror.openvid_dir)
    assert source.uri == mirror.openvid_dir.resolve().as_uri()
    assert source.list_files() == _expected_files(mirror)
    assert source.list_files("video_mappings/") == [f"video_mappings/OpenVid_part{n}.csv" for n in range(3)]
    assert source.list_files("OpenVid_part2") == ["OpenVid_part2_partaa", "OpenVid_part2_partab"]
    data = (mirror.openvid_dir / "OpenVid_part0.zip").read_bytes()
    assert source.size("OpenVid_part0.zip") == len(data)
    assert source.read_range("OpenVid_part0.zip", 10, 100) == data[10:110]
    assert source.read_range("OpenVid_part0.zip", 0, 0) == b""
    assert source.bytes_fetched == 100

    local = source.download(OPENVID_CSV, tmp_path)
    assert local == tmp_path / OPENVID_CSV
    assert local.read_bytes() == mirror.metadata_csv.read_bytes()
    assert source.bytes_fetched == 100  # whole-file downloads are not ranged reads


def test_local_source_skips_the_client_cache_folder(tmp_path: Path) -> None:
    (tmp_path / ".cache/huggingface").mkdir(parents=True)
    (tmp_path / ".cache/huggingface/x.metadata").write_text("x")
    (tmp_path / "a.csv").write_text("a")
    assert LocalSource(tmp_path).list_files() == ["a.csv"]


def test_bytes_fetched_is_exact_across_threads(mirror: MirrorSummary) -> None:
    source = LocalSource(mirror.openvid_dir)

    def work() -> None:
        for offset in range(200):
            source.read_range("OpenVid_part0.zip", offset, 7)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.bytes_fetched == 8 * 200 * 7


def test_local_errors_name_the_source_and_the_path(mirror: MirrorSummary, tmp_path: Path) -> None:
    source = LocalSource(mirror.openvid_dir)
    size = source.size("OpenVid_part0.zip")
    cases = [
        (lambda: source.size("missing.csv"), "missing.csv"),
        (lambda: source.read_range("missing.zip", 0, 4), "missing.zip"),
        (lambda: source.read_range("OpenVid_part0.zip", size - 2, 4), "OpenVid_part0.zip"),
        (lambda: source.read_range("OpenVid_part0.zip", -1, 4), "OpenVid_part0.zip"),
        (lambda: source.read_range("../secrets", 0, 4), "../secrets"),
        (lambda: source.download("missing.csv", tmp_path), "missing.csv"),
    ]
    for call, path in cases:
        with pytest.raises(SourceError) as error:
            call()
        assert source.uri in str(error.value) and path in str(error.value)
    with pytest.raises(SourceError, match="does not exist"):
        LocalSource(tmp_path / "nowhere").list_files()


# ---- HubSource through the real client --------------------------------------------------
def test_hub_source_lists_sizes_reads_ranges_and_downloads(
    mirror: MirrorSummary, endpoint: str, tmp_path: Path
) -> None:
    source = HubSource(OPENVID_REPO, endpoint=endpoint)
    assert source.uri == f"hf://datasets/{OPENVID_REPO}"
    assert source.list_files() == _expected_files(mirror)
    assert source.list_files("video_mappings/") == [f"video_mappings/OpenVid_part{n}.csv" for n in range(3)]
    assert source.list_files("OpenVid_part2_") == ["OpenVid_part2_partaa", "OpenVid_part2_partab"]
    assert source.list_files("no_such_folder/") == []

    data = (mirror.openvid_dir / "OpenVid_part1.zip").read_bytes()
    assert source.size("OpenVid_part1.zip") == len(data)
    assert HubSource(OPENVID_REPO, endpoint=endpoint).size("OpenVid_part1.zip") == len(data)  # paths-info
    assert source.read_range("OpenVid_part1.zip", 5, 64) == data[5:69]
    assert source.read_range("OpenVid_part1.zip", len(data) - 22, 22) == data[-22:]  # the zip's end record
    assert source.bytes_fetched == 86

    local = source.download(OPENVID_CSV, tmp_path)
    assert local == tmp_path / OPENVID_CSV
    assert local.read_bytes() == mirror.metadata_csv.read_bytes()
    assert source.bytes_fetched == 86


def test_hub_ranged_reads_rebuild_a_split_part(mirror: MirrorSummary, endpoint: str) -> None:
    source = HubSource(OPENVID_REPO, endpoint=endpoint)
    pieces = source.list_files("OpenVid_part2_")
    blob = b"".join(source.read_range(p, 0, source.size(p)) for p in pieces)
    names = [i.filename for i in zipfile.ZipFile(io.BytesIO(blob)).infolist() if not i.is_dir()]
    assert {n.rsplit("/", 1)[1] for n in names} == {v for v, p in mirror.clip_parts.items() if p == 2}
    assert source.bytes_fetched == len(blob)


def test_hub_source_honours_hf_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    source = open_source(f"hf://datasets/{OPENVID_REPO}")
    assert isinstance(source, HubSource) and source.endpoint == endpoint
    assert OPENVID_CSV in source.list_files("data/")


def test_hub_errors_name_the_source_and_the_path(endpoint: str, tmp_path: Path) -> None:
    source = HubSource(OPENVID_REPO, endpoint=endpoint)
    for call, path in [
        (lambda: source.size("missing.csv"), "missing.csv"),
        (lambda: source.read_range("missing.zip", 0, 4), "missing.zip"),
        (lambda: source.read_range("OpenVid_part0.zip", 10**9, 4), "OpenVid_part0.zip"),
        (lambda: source.download("missing.csv", tmp_path), "missing.csv"),
    ]:
        with pytest.raises(SourceError) as error:
            call()
        assert source.uri in str(error.value) and path in str(error.value)
    with pytest.raises(SourceError, match="nobody/nothing"):
        HubSource("nobody/nothing", endpoint=endpoint).list_files()
    with pytest.raises(SourceError, match="@v9"):
        HubSource(OPENVID_REPO, revision="v9", endpoint=endpoint).download(OPENVID_CSV, tmp_path)


# ---- S3Source key mapping (the round trip against the real store is an integration test) ----
class _MemoryStore:
    """The four ``ObjectStore`` calls S3Source makes, over a dict."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        return [ObjectInfo(k, len(v), "e") for k, v in sorted(self.objects.items()) if k.startswith(prefix)]

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        return ObjectInfo(key, len(self.objects[key]), "e") if key in self.objects else None

    def get_bytes(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes:
        if key not in self.objects:
            raise ObjectStoreError(f"get s3://{bucket}/{key} failed: NoSuchKey")
        return self.objects[key][offset : offset + length if length else None]

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        path.write_bytes(self.objects[key])
        return path


def test_s3_source_maps_repository_paths_to_keys(tmp_path: Path) -> None:
    store = _MemoryStore({"m/repo/a.csv": b"x,y\n", "m/repo/d/p.zip": bytes(range(50)), "m/other/z": b"z"})
    source = S3Source("bucket", "/m/repo/", store=store)  # type: ignore[arg-type]
    assert source.uri == "s3://bucket/m/repo"
    assert source.list_files() == ["a.csv", "d/p.zip"]
    assert source.list_files("d/") == ["d/p.zip"]
    assert source.size("d/p.zip") == 50
    assert source.read_range("d/p.zip", 10, 5) == bytes(range(10, 15))
    assert source.read_range("d/p.zip", 10, 0) == b""
    assert source.bytes_fetched == 5
    assert source.download("a.csv", tmp_path).read_bytes() == b"x,y\n"
    with pytest.raises(SourceError, match=r"s3://bucket/m/repo.*missing"):
        source.size("missing")
    with pytest.raises(SourceError, match=r"s3://bucket/m/repo.*d/p.zip"):
        source.read_range("d/p.zip", 45, 10)
    with pytest.raises(SourceError, match=r"s3://bucket/m/repo.*nope"):
        source.read_range("nope", 0, 1)


# ---- open_source ------------------------------------------------------------------------
def test_open_source_parses_every_kind_of_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    hub = open_source("hf://datasets/nkp37/OpenVid-1M")
    assert isinstance(hub, HubSource) and (hub.repo_id, hub.revision, hub.repo_type) == (
        "nkp37/OpenVid-1M",
        "main",
        "dataset",
    )
    pinned = open_source("hf://datasets/WenhaoWang/VidProM@refs%2Fpr%2F3")
    assert isinstance(pinned, HubSource) and pinned.revision == "refs/pr/3"
    assert pinned.uri == "hf://datasets/WenhaoWang/VidProM@refs/pr/3"

    local = open_source(tmp_path.as_uri())
    assert isinstance(local, LocalSource) and local.root == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    plain = open_source("mirror/nkp37")
    assert isinstance(plain, LocalSource) and plain.root == tmp_path.resolve() / "mirror/nkp37"

    s3 = open_source("s3://adfame-datasets/mirrors/night/nkp37/OpenVid-1M")
    assert isinstance(s3, S3Source)
    assert (s3.bucket, s3.prefix) == ("adfame-datasets", "mirrors/night/nkp37/OpenVid-1M/")
    bucket_only = open_source("s3://adfame-datasets")
    assert isinstance(bucket_only, S3Source) and bucket_only.prefix == ""


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "hf://models/a/b",
        "hf://datasets/only-owner",
        "hf://datasets/a/b/c",
        "hf://datasets/a/b@",
        "s3://",
        "http://example.com/data",
        "file://otherhost/data",
    ],
)
def test_open_source_refuses_bad_uris_by_name(uri: str) -> None:
    with pytest.raises(ValueError) as error:
        open_source(uri)
    assert repr(uri) in str(error.value) or not uri
