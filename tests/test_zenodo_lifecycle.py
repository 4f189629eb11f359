"""Packaging and the deposit lifecycle against the local repository (started here on a free port).

Packages the bundled real Aquarium sample, deposits, re-runs, resumes after failures, publishes new
versions, discards, fetches back, and drives the CLI through click's runner.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from imagine.kernel import InputError, RemoteError, UsageError
from imagine.publish import deposit as D
from imagine.publish.cli import main
from imagine.publish.localrepo import Fault, FaultPlan, start_server
from imagine.publish.zenodo import PendingCreateError, ZenodoClient
from tests.helpers import local_repository

SAMPLE = Path(__file__).parents[1] / "curate" / "sample" / "aquarium"
TOKEN = "lifecycle-token-0b9d2c"
META = {"upload_type": "dataset", "title": "Aquarium fish detection sample", "version": "1.0",
        "description": "<p>23 aquarium images with boxes for 7 classes (Roboflow Aquarium, CC BY 4.0).</p>",
        "creators": [{"name": "Doe, Jane", "affiliation": "Ifremer", "orcid": "0000-0002-1825-0097"}],
        "license": "cc-by-4.0", "keywords": ["fish", "object detection", "aquarium"],
        "related_identifiers": [{"identifier": "https://universe.roboflow.com/brad-dwyer/aquarium-combined",
                                 "relation": "isDerivedFrom", "scheme": "url"}]}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    yield from local_repository(tmp_path, TOKEN)


def client(server: Any, **kw: Any) -> ZenodoClient:
    return ZenodoClient(server.url + "/api", TOKEN, backoff=0.01, sleep=lambda s: None, **kw)


def meta_dir(path: Path, **extra: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "zenodo.json").write_text(json.dumps({"metadata": {**META, **extra}}))
    (path / "README.md").write_text("# Aquarium sample\n\nDataset card.\n")
    (path / "dcat.ttl").write_text("@prefix dcat: <http://www.w3.org/ns/dcat#> .\n")
    return path


def small_folder(path: Path, files: dict[str, bytes], **extra: Any) -> Path:
    meta_dir(path, **extra)
    for name, data in files.items():
        (path / name).write_bytes(data)
    D.write_manifest(path)
    return path


def live(server: Any) -> list[dict[str, Any]]:
    return [r for r in server.repo.records.values() if not r.get("deleted")]


def test_package_the_real_sample_deposit_and_fetch_back(server: Any, tmp_path: Path) -> None:
    out = tmp_path / "deposit"
    res = D.package(SAMPLE, meta_dir(tmp_path / "meta"), out, formats=["coco"], shard_bytes=300_000)
    names = sorted(p.name for p in out.iterdir())
    shards = [n for n in names if n.startswith("images-")]
    assert res.shards == len(shards) > 1
    assert {"dataset.json", "images.parquet", "annotations.parquet", "categories.parquet", "annotations-coco.zip",
            "zenodo.json", "README.md", "dcat.ttl", "manifest.json"} <= set(names)
    zipped = sorted(n for s in shards for n in zipfile.ZipFile(out / s).namelist())
    from imagine.curate.formats import read_dataset

    ds = read_dataset(SAMPLE)
    assert zipped == sorted("images/" + n for n in ds.images.column("file_name").to_pylist())
    manifest = json.loads((out / "manifest.json").read_text())
    for row in manifest["files"]:
        data = (out / row["name"]).read_bytes()
        assert row["md5"] == hashlib.md5(data).hexdigest() and row["sha256"] == hashlib.sha256(data).hexdigest()

    r = D.deposit(out, client=client(server))
    assert r.state == "published" and r.doi == f"10.5072/zenodo.{r.record_id}"
    assert sorted(r.uploaded) == sorted(names)
    got = D.fetch(r.record_id, tmp_path / "fetched", client=client(server))
    assert got.manifest_checked and len(got.files) == len(names)
    back = read_dataset(tmp_path / "fetched", "native")
    assert back.equals(ds)


def test_shards_respect_the_file_limit() -> None:
    sizes = [1000] * 500
    plan = D._shard_plan(sizes, 90, shard_bytes=10)
    assert len(plan) <= 90
    assert [i for s in plan for i in s] == list(range(500))
    with pytest.raises(UsageError, match="50 GB"):
        D._shard_plan([30 * 10**9, 30 * 10**9], 90, 10**9)


def test_rerun_is_idempotent_and_key_is_in_the_metadata(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n", "b.csv": b"3,4\n"})
    first = D.deposit(folder, client=client(server))
    c = client(server)
    second = D.deposit(folder, client=c)
    assert (second.record_id, second.doi) == (first.record_id, first.doi)
    assert second.uploaded == [] and not any(x.method in ("POST", "PUT") for x in c.calls)
    assert len(live(server)) == 1
    state = json.loads((folder / D.STATE_FILE).read_text())
    rec = c.get_record(first.record_id)
    keys = [x["identifier"] for x in rec["metadata"]["related_identifiers"]]
    assert f"urn:imagine:deposit:{state['key']}" in keys
    assert "https://universe.roboflow.com/brad-dwyer/aquarium-combined" in keys


def test_crash_after_create_finds_the_draft_by_its_key(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    server.faults = FaultPlan([Fault("status", "GET", "/deposit/depositions/\\d+/files", status=503, times=-1)])
    with pytest.raises(RemoteError):
        D.deposit(folder, client=client(server, max_retries=1))
    # simulate losing the draft id (crash before the state was written): only the key remains
    state = json.loads((folder / D.STATE_FILE).read_text())
    state["targets"] = {}
    (folder / D.STATE_FILE).write_text(json.dumps(state))
    server.faults = FaultPlan()
    r = D.deposit(folder, client=client(server))
    assert r.state == "published" and len(live(server)) == 1


def crash_after_create(server: Any, folder: Path) -> None:
    """A first run whose create reached the server but whose answer was lost, then the process died."""
    server.faults = FaultPlan([Fault("after", "POST", "/deposit/depositions$", status=0)], lag=3)
    with pytest.raises(RemoteError):
        D.deposit(folder, client=client(server, max_retries=0))
    state = json.loads((folder / D.STATE_FILE).read_text())
    t = state["targets"][server.url + "/api"]
    assert "creating" in t and not t.get("draft_id")  # only the key and the in-flight marker are on disk
    assert len(live(server)) == 1
    assert D.status(folder, client=client(server), offline=True)["create_in_flight_since"] == t["creating"]["at"]
    assert "in flight" in D.plan(folder, server.url)[0] and not any(
        x.startswith("POST") and x.split()[1].endswith("/deposit/depositions") for x in D.plan(folder, server.url))


def list_calls(server: Any) -> int:
    return sum(e["method"] == "GET" and e["path"] == "/api/deposit/depositions" for e in server.log)


def test_crash_after_create_with_search_lag_never_makes_a_second_draft(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    crash_after_create(server, folder)
    before = list_calls(server)
    r = D.deposit(folder, client=client(server))  # the search hides the draft for its next 3 list calls
    assert r.state == "published" and len(live(server)) == 1
    assert list_calls(server) - before == 4  # it kept looking instead of creating another draft
    assert "creating" not in json.loads((folder / D.STATE_FILE).read_text())["targets"][server.url + "/api"]


def test_create_lost_in_flight_with_search_lag_is_found_in_the_same_run(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    server.faults = FaultPlan([Fault("after", "POST", "/deposit/depositions$", status=0)], lag=4)
    r = D.deposit(folder, client=client(server))
    assert r.state == "published" and len(live(server)) == 1
    assert sum(e["method"] == "POST" and e["path"] == "/api/deposit/depositions" for e in server.log) == 1


def test_lag_longer_than_the_wait_is_a_resumable_error_not_a_duplicate(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    crash_after_create(server, folder)
    server.faults = FaultPlan(lag=50)
    with pytest.raises(PendingCreateError) as info:
        D.deposit(folder, client=client(server, search_wait=3, create_settle=3600))
    msg = info.value.render()
    assert "re-run" in msg and "nothing was created" in msg and TOKEN not in msg
    assert len(live(server)) == 1 and live(server)[0]["state"] == "unsubmitted"
    server.faults = FaultPlan()  # the index caught up
    r = D.deposit(folder, client=client(server))
    assert r.state == "published" and len(live(server)) == 1


def test_create_that_never_reached_the_server_is_made_once_the_search_settled(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    server.faults = FaultPlan([Fault("status", "POST", "/deposit/depositions$", status=503)], lag=2)
    with pytest.raises(RemoteError):
        D.deposit(folder, client=client(server, max_retries=0))
    assert live(server) == [] and "creating" in json.loads((folder / D.STATE_FILE).read_text())["targets"][
        server.url + "/api"]
    with pytest.raises(PendingCreateError):  # too early to tell: refuse to guess
        D.deposit(folder, client=client(server, search_wait=3, create_settle=3600))
    assert live(server) == []
    # the search had create_settle seconds (the client's clock: its waits) to show a draft and did not
    r = D.deposit(folder, client=client(server, search_wait=8, create_settle=8))
    assert r.state == "published" and len(live(server)) == 1


def test_interrupted_upload_resumes_and_skips_what_is_there(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {f"shard-{i}.zip": os.urandom(200_000) for i in range(4)})
    server.faults = FaultPlan([Fault("status", "PUT", "shard-2.zip", status=503, times=-1)])
    with pytest.raises(RemoteError) as info:
        D.deposit(folder, client=client(server, max_retries=2))
    assert "re-run" in info.value.message
    st = D.status(folder, client=client(server))
    assert st["phase"] == "draft" and st["files"]["shard-2.zip"] == "pending"
    assert st["files"]["shard-0.zip"] == "uploaded"
    server.faults = FaultPlan()
    r = D.deposit(folder, client=client(server))
    assert "shard-0.zip" in r.skipped and "shard-1.zip" in r.skipped and "shard-2.zip" in r.uploaded
    assert r.state == "published" and len(live(server)) == 1


def test_new_version_resends_metadata_replaces_changed_keeps_unchanged(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"keep.csv": b"same\n", "change.csv": b"v1\n", "drop.csv": b"x\n"})
    v1 = D.deposit(folder, client=client(server))
    (folder / "change.csv").write_bytes(b"v2\n")
    (folder / "drop.csv").unlink()
    (folder / "new.csv").write_bytes(b"new\n")
    (folder / "zenodo.json").write_text(json.dumps({"metadata": {**META, "version": "2.0"}}))
    D.write_manifest(folder)
    c = client(server)
    v2 = D.new_version(folder, client=c)
    assert v2.record_id != v1.record_id and v2.conceptdoi == v1.conceptdoi
    assert "keep.csv" in v2.skipped and "change.csv" in v2.uploaded and "new.csv" in v2.uploaded
    assert v2.removed == ["drop.csv"]
    rec = c.get_record(v2.record_id)
    assert rec["metadata"]["version"] == "2.0" and rec["metadata"]["title"] == META["title"]
    assert rec["metadata"]["creators"][0]["orcid"] == "0000-0002-1825-0097"
    assert sorted(f["key"] for f in rec["files"]) == sorted(p.name for p in folder.iterdir()
                                                            if not p.name.startswith("."))
    old = c.get_record(v1.record_id)
    assert "drop.csv" in [f["key"] for f in old["files"]] and old["metadata"]["version"] == "1.0"
    # deposit on a published folder whose files changed points to new-version
    (folder / "new.csv").write_bytes(b"newer\n")
    D.write_manifest(folder)
    with pytest.raises(UsageError, match="new-version"):
        D.deposit(folder, client=client(server))


def test_discard_then_deposit_again(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1\n"})
    server.faults = FaultPlan([Fault("status", "POST", "/actions/publish", status=503, times=-1)])
    with pytest.raises(RemoteError):
        D.deposit(folder, client=client(server, max_retries=1))
    draft = json.loads((folder / D.STATE_FILE).read_text())["targets"][server.url + "/api"]["draft_id"]
    out = D.discard(folder, client=client(server))
    assert out["discarded"] == draft and live(server) == []
    server.faults = FaultPlan()
    r = D.deposit(folder, client=client(server))
    assert r.state == "published" and r.record_id != draft and len(live(server)) == 1
    with pytest.raises(UsageError, match="no draft"):
        D.discard(folder, client=client(server))


def test_quota_exceeded_is_clear_and_a_rerun_finishes(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1}, quota=300_000)
    try:
        folder = small_folder(tmp_path / "dep", {"a.bin": os.urandom(200_000), "b.bin": os.urandom(200_000)})
        with pytest.raises(RemoteError) as info:
            D.deposit(folder, client=client(srv))
        assert info.value.status == 400 and "Bucket quota exceeded." in info.value.message
        srv.repo.quota = 10**9  # e.g. after a quota increase
        r = D.deposit(folder, client=client(srv))
        assert r.state == "published" and len(live(srv)) == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_missing_and_malformed_metadata(server: Any, tmp_path: Path) -> None:
    folder = tmp_path / "dep"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"1\n")
    with pytest.raises(InputError) as info:
        D.deposit(folder, client=client(server))
    assert str(folder / "zenodo.json") in info.value.render() and "missing" in info.value.render()
    (folder / "zenodo.json").write_text('{"metadata": {"title": "x",\n  }')
    with pytest.raises(InputError) as info:
        D.deposit(folder, client=client(server))
    assert info.value.place == "line 2"
    assert not (folder / D.STATE_FILE).exists() and live(server) == []


def test_validation_gate_refuses_before_any_request(server: Any, tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1\n"}, title="ab", publication_date="2024-13")
    c = client(server)
    with pytest.raises(D.GateError) as info:
        D.deposit(folder, client=c)
    text = info.value.render()
    assert "(/metadata/title)" in text and "(/metadata/publication_date)" in text
    assert info.value.exit_code == 1 and c.calls == [] and live(server) == []
    (folder / "a.csv").write_bytes(b"2\n")  # changed after packaging: the manifest disagrees
    with pytest.raises(D.GateError, match="differs from its manifest"):
        D.deposit(folder, client=c)


def test_fair_gate_without_the_fair_module(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imagine.publish

    folder = small_folder(tmp_path / "dep", {"a.csv": b"1\n"})
    monkeypatch.setitem(sys.modules, "imagine.publish.fair", None)  # the FAIR module is absent
    monkeypatch.delattr(imagine.publish, "fair", raising=False)
    with pytest.raises(D.GateError, match="FAIR check is unavailable"):
        D.deposit(folder, client=client(server), min_fair=50)
    assert live(server) == []
    r = D.deposit(folder, client=client(server), min_fair=50, force=True)
    assert r.state == "published" and any("FAIR check unavailable" in w for w in r.warnings)


def test_fair_gate_with_the_real_fair_check(server: Any, tmp_path: Path) -> None:
    fair = pytest.importorskip("imagine.publish.fair")
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1\n"})
    score = float(fair.fair_score(folder).score)
    assert 0 <= score < 100
    with pytest.raises(D.GateError, match=f"FAIR score {score:.0f} is below --min-fair"):
        D.deposit(folder, client=client(server), min_fair=min(100.0, score + 1))
    assert live(server) == []
    forced = D.deposit(folder, client=client(server), min_fair=min(100.0, score + 1), force=True)
    assert forced.fair_score == score and any("--force" in w for w in forced.warnings)
    other = small_folder(tmp_path / "dep2", {"b.csv": b"2\n"})
    assert D.deposit(other, client=client(server), min_fair=max(0.0, score - 1)).fair_score == score


def test_cli_deposit_status_fetch_and_token_secrecy(server: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    target = server.url
    runner = CliRunner()
    dry = runner.invoke(main, ["deposit", str(folder), "--target", target, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"POST {target}/api/deposit/depositions" in dry.output and "PUT " in dry.output
    assert live(server) == []
    res = runner.invoke(main, ["deposit", str(folder), "--target", target, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["doi"].startswith("10.5072/zenodo.") and out["state"] == "published"
    st = runner.invoke(main, ["status", str(folder), "--target", target, "--json"])
    assert st.exit_code == 0 and json.loads(st.output)["files"]["a.csv"] == "uploaded"
    fe = runner.invoke(main, ["fetch", out["doi"], str(tmp_path / "got"), "--target", target])
    assert fe.exit_code == 0, fe.output
    assert (tmp_path / "got" / "a.csv").read_bytes() == b"1,2\n"
    monkeypatch.setenv("ZENODO_TOKEN", "wrong-" + TOKEN)
    bad = runner.invoke(main, ["deposit", str(small_folder(tmp_path / "d2", {"b.csv": b"1"})), "--target", target])
    assert bad.exit_code == 2 and "HTTP 403" in bad.output and "check the token" in bad.output
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                      and "repo" not in p.parts)
    for text in (dry.output, res.output, st.output, fe.output, bad.output, written):
        assert TOKEN not in text


def test_publish_dataset_for_the_readme_job(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "repo")  # no tokens given: it makes its own, in a 0600 file
    try:
        assert oct((tmp_path / "repo" / "tokens.json").stat().st_mode & 0o777) == "0o600"
        folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
        r = D.publish_dataset(folder, srv.url, local_root=tmp_path / "repo")
        assert r.doi == f"10.5072/zenodo.{r.record_id}" and r.url and r.url.endswith(f"/records/{r.record_id}")
    finally:
        srv.shutdown()
        srv.server_close()


def test_publish_dataset_starts_its_own_repository_for_a_root(tmp_path: Path) -> None:
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1,2\n"})
    r = D.publish_dataset(folder, local_root=tmp_path / "own")
    assert r.state == "published" and r.doi == f"10.5072/zenodo.{r.record_id}"
    from imagine.publish.localrepo import LocalRepository

    repo = LocalRepository(tmp_path / "own")  # the record is on disk there, for `serve --root` later
    assert repo.records[str(r.record_id)]["published"]["files"][0]["key"] in {"a.csv", "README.md", "dcat.ttl",
                                                                                "manifest.json", "zenodo.json"}


def test_default_local_target_not_running_is_a_clear_usage_error(tmp_path: Path) -> None:
    if D._listening("http://127.0.0.1:5005/api"):
        pytest.skip("something listens on the default port 5005")
    folder = small_folder(tmp_path / "dep", {"a.csv": b"1\n"})
    with pytest.raises(UsageError, match="imagine-publish serve"):
        D.deposit(folder, token="x")
    assert not (folder / D.STATE_FILE).exists()


def test_cli_package_new_version_dry_run_and_discard(server: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    runner = CliRunner()
    out = tmp_path / "deposit"
    res = runner.invoke(main, ["package", str(SAMPLE), str(meta_dir(tmp_path / "meta")), str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["shards"] == 1 and (out / "images-001.zip").is_file()
    again = runner.invoke(main, ["package", str(SAMPLE), str(tmp_path / "meta"), str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    nometa = runner.invoke(main, ["package", str(SAMPLE), str(tmp_path / "nothing"), str(tmp_path / "o2")])
    assert nometa.exit_code == 2 and "zenodo.json" in nometa.output and not (tmp_path / "o2").exists()
    nv = runner.invoke(main, ["new-version", str(out), "--target", server.url, "--dry-run"])
    assert nv.exit_code == 0 and "actions/newversion" in nv.output
    server.faults = FaultPlan([Fault("ratelimit", "POST", "/actions/publish", retry_after=3600, times=-1)])
    failed = runner.invoke(main, ["deposit", str(out), "--target", server.url])
    assert failed.exit_code == 2 and "retry in 3600 s" in failed.output and "re-run the same command" in failed.output
    assert "Traceback" not in failed.output
    server.faults = FaultPlan()
    dis = runner.invoke(main, ["discard", str(out), "--target", server.url, "--json"])
    assert dis.exit_code == 0 and live(server) == []
