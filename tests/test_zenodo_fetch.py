"""``fetch`` is resumable: ``<name>.part`` files continued with HTTP Range after a dropped connection or
a crash, MD5 verified at the end, files already there kept. Against a real local repository."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from imagine.kernel import RemoteError, UsageError
from imagine.publish import deposit as D
from imagine.publish.localrepo import Fault, FaultPlan
from imagine.publish.zenodo import ZenodoClient
from tests.helpers import local_repository

TOKEN = "fetch-token-6d0e"
META = {"upload_type": "dataset", "title": "Deep-sea fauna crops", "description": "ROV frame crops.",
        "creators": [{"name": "Doe, Jane", "affiliation": "MBARI"}], "license": "cc-by-4.0"}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    yield from local_repository(tmp_path, TOKEN)


def client(server: Any, **kw: Any) -> ZenodoClient:
    return ZenodoClient(server.url + "/api", TOKEN, backoff=0.01, sleep=lambda s: None, **kw)


@pytest.fixture
def published(server: Any, tmp_path: Path) -> tuple[int, Path]:
    rng = random.Random(11)
    folder = tmp_path / "dep"
    folder.mkdir()
    (folder / "zenodo.json").write_text(json.dumps({"metadata": META}))
    (folder / "README.md").write_text("# crops\n")
    (folder / "images-001.zip").write_bytes(rng.randbytes(700_000))
    (folder / "images-002.zip").write_bytes(rng.randbytes(300_000))
    D.write_manifest(folder)
    r = D.deposit(folder, client=client(server))
    assert r.record_id is not None
    return r.record_id, folder


def same_files(got: Path, folder: Path) -> None:
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in folder.iterdir() if p.name[0] != ".")
    for p in got.iterdir():
        assert p.read_bytes() == (folder / p.name).read_bytes(), p.name


def downloads(server: Any, name: str) -> list[tuple[int, str | None]]:
    return [(e["status"], e["range"]) for e in server.log if e["path"].endswith(f"/{name}/content")]


def test_reset_mid_download_resumes_with_a_range_request(server: Any, published: Any, tmp_path: Path) -> None:
    rid, folder = published
    server.faults = FaultPlan([Fault("reset", "GET", "images-001.zip/content$", after_bytes=250_000)])
    got = D.fetch(rid, tmp_path / "got", client=client(server))
    same_files(tmp_path / "got", folder)
    seen = downloads(server, "images-001.zip")
    assert seen[:2] == [(200, None), (0, None)]  # the first answer was cut
    assert len(seen) == 3 and seen[2][0] == 206
    start = int(str(seen[2][1]).removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 250_000  # it asked only for what it did not have
    row = next(f for f in got.files if f["name"] == "images-001.zip")
    assert row["status"] == "resumed"
    assert row["md5"] == hashlib.md5((folder / "images-001.zip").read_bytes()).hexdigest()
    assert got.manifest_checked and not list((tmp_path / "got").glob("*.part"))


def test_rerun_after_a_failed_fetch_resumes_and_keeps_finished_files(server: Any, published: Any,
                                                                     tmp_path: Path) -> None:
    rid, folder = published
    server.faults = FaultPlan([Fault("reset", "GET", "images-002.zip/content$", after_bytes=100_000, times=-1)])
    with pytest.raises(RemoteError) as info:
        D.fetch(rid, tmp_path / "got", client=client(server, max_retries=1))
    msg = info.value.render()
    assert "images-002.zip" in msg and "re-run to resume" in msg and TOKEN not in msg
    part = tmp_path / "got" / "images-002.zip.part"
    kept = part.read_bytes()
    # two attempts, each cut after 100 kB of its answer, the second resuming where the first stopped
    assert 100_000 < len(kept) <= 200_000 and (folder / "images-002.zip").read_bytes().startswith(kept)
    assert not (tmp_path / "got" / "images-002.zip").exists()  # never a half file under the real name
    finished = {p.name for p in (tmp_path / "got").iterdir() if not p.name.endswith(".part")}
    assert "images-001.zip" in finished
    server.faults = FaultPlan()
    server.log.clear()
    got = D.fetch(rid, tmp_path / "got", client=client(server))
    same_files(tmp_path / "got", folder)
    assert downloads(server, "images-002.zip") == [(206, f"bytes={len(kept)}-")]
    status = {f["name"]: f["status"] for f in got.files}
    assert status["images-002.zip"] == "resumed"
    assert all(status[n] == "present" for n in finished)
    assert all(not downloads(server, n) for n in finished)  # not downloaded again


def test_stale_part_is_detected_and_downloaded_afresh(server: Any, published: Any, tmp_path: Path) -> None:
    rid, folder = published
    dst = tmp_path / "got"
    dst.mkdir()
    (dst / "images-001.zip.part").write_bytes(b"not the right prefix" * 100)  # shorter: resumed, then wrong MD5
    (dst / "images-002.zip.part").write_bytes(b"\0" * 300_000)  # full length, wrong bytes
    D.fetch(rid, dst, client=client(server))
    same_files(dst, folder)
    assert downloads(server, "images-001.zip") == [(206, "bytes=2000-"), (200, None)]
    assert downloads(server, "images-002.zip") == [(200, None)]


def test_checksum_mismatch_deletes_the_part_and_names_the_file(server: Any, published: Any, tmp_path: Path) -> None:
    rid, _ = published
    rec = server.repo.records[str(rid)]
    f = next(f for f in rec["published"]["files"] if f["key"] == "images-002.zip")
    stored = server.repo.root / "files" / rec["bucket"] / f["path"]
    stored.write_bytes(b"\1" + stored.read_bytes()[1:])  # bit rot on the server: same size, other bytes
    with pytest.raises(RemoteError) as info:
        D.fetch(rid, tmp_path / "got", client=client(server))
    msg = info.value.render()
    assert "checksum mismatch for images-002.zip" in msg and f["md5"] in msg
    assert not (tmp_path / "got" / "images-002.zip.part").exists()
    assert not (tmp_path / "got" / "images-002.zip").exists()


def test_existing_file_with_another_checksum_needs_overwrite(server: Any, published: Any, tmp_path: Path) -> None:
    rid, folder = published
    dst = tmp_path / "got"
    dst.mkdir()
    (dst / "README.md").write_text("# my local edits\n")
    with pytest.raises(UsageError) as info:
        D.fetch(rid, dst, client=client(server))
    assert "README.md" in info.value.render() and "--overwrite" in info.value.render()
    assert (dst / "README.md").read_text() == "# my local edits\n"
    D.fetch(rid, dst, client=client(server), overwrite=True)
    same_files(dst, folder)


def test_server_without_range_support_restarts_from_zero(tmp_path: Path) -> None:
    """Python's own file server ignores Range (answers 200): the part is discarded, not appended to."""
    www = tmp_path / "www"
    www.mkdir()
    data = random.Random(3).randbytes(200_000)
    (www / "blob.bin").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        dst = tmp_path / "blob.bin"
        (tmp_path / "blob.bin.part").write_bytes(data[:50_000])
        c = ZenodoClient(f"http://127.0.0.1:{srv.server_address[1]}/api", None, backoff=0.01, sleep=lambda s: None)
        md5 = hashlib.md5(data).hexdigest()
        assert c.download(f"http://127.0.0.1:{srv.server_address[1]}/blob.bin", dst, md5, len(data)) == md5
        assert dst.read_bytes() == data and c.last_resumed == 0 and not (tmp_path / "blob.bin.part").exists()
    finally:
        srv.shutdown()
        srv.server_close()
