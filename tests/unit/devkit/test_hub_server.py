"""The mirror server answers the unmodified huggingface_hub client the way the Hub does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, HfFileSystem, RepoFile, RepoFolder, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

REPO = "acme/ads"
FILES = {"data/train/meta.csv": b"video,caption\na.mp4,hello\n", "part0.zip": bytes(range(256)) * 40}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    for path, data in FILES.items():
        (root / REPO / path).parent.mkdir(parents=True, exist_ok=True)
        (root / REPO / path).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def endpoint(mirror: Path):
    from devkit.hub_server import serve_mirror

    with serve_mirror(mirror) as url:
        yield url


def _url(endpoint: str, path: str, revision: str = "main") -> str:
    return f"{endpoint}/datasets/{REPO}/resolve/{revision}/{path}"


def test_head_has_the_headers_the_client_needs(endpoint: str) -> None:
    response = httpx.head(_url(endpoint, "part0.zip"))
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(FILES["part0.zip"]))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    assert len(response.headers["X-Repo-Commit"]) == 40


def test_ranges(endpoint: str) -> None:
    data = FILES["part0.zip"]
    url = _url(endpoint, "part0.zip")
    partial = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert httpx.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert httpx.get(url, headers={"Range": f"bytes={len(data) - 5}-"}).content == data[-5:]
    assert httpx.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == data


def test_missing_things_carry_the_hub_error_codes(endpoint: str) -> None:
    assert httpx.head(_url(endpoint, "nope.csv")).headers["X-Error-Code"] == "EntryNotFound"
    assert httpx.get(_url(endpoint, "part0.zip", "v2")).headers["X-Error-Code"] == "RevisionNotFound"
    missing_repo = httpx.get(f"{endpoint}/datasets/acme/none/resolve/main/x")
    assert missing_repo.headers["X-Error-Code"] == "RepoNotFound"
    assert httpx.get(f"{endpoint}/datasets/{REPO}/resolve/main/../../etc/passwd").status_code == 404


def test_api_listing_info_and_paths_info(endpoint: str) -> None:
    api = HfApi(endpoint=endpoint)
    assert sorted(api.list_repo_files(REPO, repo_type="dataset")) == sorted(FILES)
    top = list(api.list_repo_tree(REPO, repo_type="dataset"))
    assert {(type(e), e.path) for e in top} == {(RepoFolder, "data"), (RepoFile, "part0.zip")}
    nested = list(api.list_repo_tree(REPO, "data/train", repo_type="dataset"))
    assert [(e.path, e.size) for e in nested] == [("data/train/meta.csv", len(FILES["data/train/meta.csv"]))]
    info = api.dataset_info(REPO, files_metadata=True)
    assert info.id == REPO and len(info.sha or "") == 40
    assert {s.rfilename: s.size for s in info.siblings or []} == {k: len(v) for k, v in FILES.items()}
    assert api.dataset_info(REPO, revision="main").sha == info.sha
    paths = api.get_paths_info(REPO, ["part0.zip", "data", "absent"], repo_type="dataset")
    assert {(type(p), p.path) for p in paths} == {(RepoFile, "part0.zip"), (RepoFolder, "data")}
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("acme/none")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="v2")
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, "no/such/folder", repo_type="dataset"))


def test_hf_hub_download_and_hf_file_system(endpoint: str, tmp_path: Path) -> None:
    path = hf_hub_download(
        REPO, "data/train/meta.csv", repo_type="dataset", endpoint=endpoint, cache_dir=tmp_path / "cache"
    )
    assert Path(path).read_bytes() == FILES["data/train/meta.csv"]
    fs = HfFileSystem(endpoint=endpoint, skip_instance_cache=True)
    with fs.open(f"datasets/{REPO}/part0.zip", "rb", block_size=64) as handle:
        handle.seek(1000)
        assert handle.read(30) == FILES["part0.zip"][1000:1030]
