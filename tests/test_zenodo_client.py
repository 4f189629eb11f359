"""The Zenodo client's HTTP behaviour: retries only where safe, rate limits, errors, tokens, uploads.

Against a real local repository on 127.0.0.1 with injected faults; no mocks.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from imagine.kernel import RemoteError, UsageError
from imagine.publish.localrepo import Fault, FaultPlan, start_server
from imagine.publish.zenodo import (
    USER_AGENT,
    FileChangedError,
    ZenodoClient,
    error_message,
    file_md5,
    load_token,
    resolve_target,
)
from tests.helpers import local_repository

TOKEN = "s3cret-token-never-shown-7f3e"
META = {"upload_type": "dataset", "title": "Marine litter drone survey", "description": "Drone images.",
        "creators": [{"name": "Doe, Jane", "affiliation": "AZTI"}], "license": "cc-by-4.0"}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    yield from local_repository(tmp_path, TOKEN)


def client(server: Any, **kw: Any) -> ZenodoClient:
    sleeps: list[float] = []
    c = ZenodoClient(server.url + "/api", TOKEN, timeout=(2.0, 2.0), backoff=0.01,
                     sleep=lambda s: sleeps.append(s), **kw)
    c.sleeps = sleeps
    return c


def drafts(server: Any) -> list[dict[str, Any]]:
    return [r for r in server.repo.records.values() if not r.get("deleted")]


# ------------------------------------------------------------------ errors


def test_error_message_parses_both_body_shapes() -> None:
    rdm = json.dumps({"status": 400, "message": "A validation error occurred.",
                      "errors": [{"field": "metadata.title", "messages": ["Shorter than minimum length 3."]}]})
    assert error_message(400, rdm) == ("HTTP 400: A validation error occurred. — metadata.title: "
                                       "Shorter than minimum length 3.")
    old = json.dumps({"status": 400, "message": "Validation error.",
                      "errors": [{"field": "metadata.creators.0.type", "message": "Unknown field name."}]})
    assert "metadata.creators.0.type: Unknown field name." in error_message(400, old)
    assert "check the token" in error_message(403, b'{"status": 403, "message": "Permission denied."}')
    html = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    assert error_message(502, html) == "HTTP 502: 502 Bad Gateway nginx"
    assert "Unknown error occured." in error_message(500, json.dumps({"errors": "Unknown error occured."}))


def test_validation_error_from_server_is_readable(server: Any) -> None:
    c = client(server)
    dep = c.create_deposition({"title": "ab"}, "k")
    with pytest.raises(RemoteError) as info:
        c.publish(dep["id"])
    assert info.value.status == 400
    assert "metadata.title: Shorter than minimum length 3." in info.value.message
    assert "files.enabled" in info.value.message


# ------------------------------------------------------------------ targets and tokens


def test_targets() -> None:
    assert resolve_target("zenodo") == "https://zenodo.org/api"
    assert resolve_target("sandbox") == "https://sandbox.zenodo.org/api"
    assert resolve_target(None) == "http://127.0.0.1:5005/api"
    assert resolve_target("http://example.org:8080/") == "http://example.org:8080/api"
    with pytest.raises(UsageError, match="credentials"):
        resolve_target("https://zenodo.org/api?access_token=abc")
    with pytest.raises(UsageError, match="unknown target"):
        resolve_target("ftp://x")


def test_token_from_env_and_from_a_private_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    monkeypatch.delenv("ZENODO_SANDBOX_TOKEN", raising=False)
    cfg = tmp_path / "zenodo.json"
    cfg.write_text(json.dumps({"zenodo": "prod-tok", "sandbox": "sand-tok"}))
    os.chmod(cfg, 0o600)
    assert load_token("https://zenodo.org/api", config=cfg) == "prod-tok"
    assert load_token("https://sandbox.zenodo.org/api", config=cfg) == "sand-tok"
    monkeypatch.setenv("ZENODO_TOKEN", "env-tok")
    assert load_token("https://zenodo.org/api", config=cfg) == "env-tok"
    monkeypatch.delenv("ZENODO_TOKEN")
    os.chmod(cfg, 0o644)
    with pytest.raises(UsageError) as info:
        load_token("https://zenodo.org/api", config=cfg)
    assert "chmod 600" in info.value.render() and str(cfg) in info.value.render()
    assert "prod-tok" not in info.value.render()


def test_token_only_in_the_header_never_in_urls_logs_or_errors(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c = client(server)
    assert TOKEN not in repr(c) and TOKEN not in repr(c.session.auth)
    dep = c.create_deposition(META, "key-1")
    req = c.session.get(c.url(f"/deposit/depositions/{dep['id']}"), timeout=5)
    assert req.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.request.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("imagine-publish/")
    bad = ZenodoClient(server.url + "/api", "wrong-" + TOKEN, sleep=lambda s: None)
    with pytest.raises(RemoteError) as info:
        bad.get_deposition(dep["id"])
    assert info.value.status == 403
    everything = caplog.text + info.value.render() + "".join(call.render() for call in c.calls + bad.calls)
    assert TOKEN not in everything and "access_token" not in everything


# ------------------------------------------------------------------ retries


def test_idempotent_get_is_retried_on_5xx_and_reset(server: Any) -> None:
    c = client(server)
    dep = c.create_deposition(META, "k")
    server.faults = FaultPlan([Fault("status", "GET", "/deposit/depositions/", status=503, times=2),
                               Fault("reset", "GET", "/deposit/depositions/", times=1)])
    assert c.get_deposition(dep["id"])["id"] == dep["id"]
    assert len(c.sleeps) == 3
    assert c.sleeps == sorted(c.sleeps) or max(c.sleeps) < 1


def test_429_waits_for_retry_after_even_for_posts(server: Any) -> None:
    c = client(server)
    server.faults = FaultPlan([Fault("ratelimit", "POST", "/deposit/depositions$", retry_after=3, times=1)])
    dep = c.create_deposition(META, "k")
    assert c.sleeps == [3.0]
    assert len(drafts(server)) == 1 and dep["id"] == drafts(server)[0]["id"]


def test_too_long_a_rate_limit_wait_is_a_clear_resumable_error(server: Any) -> None:
    c = client(server, max_wait=5)
    server.faults = FaultPlan([Fault("ratelimit", "GET", "", retry_after=3600, times=1)])
    with pytest.raises(RemoteError, match="rate limited by the server; retry in 3600 s"):
        c.list_depositions()


def test_pacing_when_no_call_is_left_in_the_window(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1}, rate_limit=2)
    try:
        sleeps: list[float] = []

        def sleep(s: float) -> None:  # time passes: the server's one-minute window empties
            sleeps.append(s)
            srv.repo._hits.clear()

        c = ZenodoClient(srv.url + "/api", TOKEN, sleep=sleep)
        c.list_depositions()
        c.list_depositions()  # remaining is now 0: the next call waits for the reset instead of hitting 429
        c.list_depositions()
        assert len(sleeps) == 1 and 55 < sleeps[0] <= 61
        assert [x.status for x in c.calls] == [200, 200, 200]  # never a 429
    finally:
        srv.shutdown()
        srv.server_close()


def test_create_that_failed_after_it_succeeded_does_not_duplicate(server: Any) -> None:
    c = client(server)
    for fault in (Fault("after", "POST", "/deposit/depositions$", status=500),
                  Fault("after", "POST", "/deposit/depositions$", status=0),  # connection drop after the work
                  Fault("slow", "POST", "/deposit/depositions$", delay=2.5)):  # answer after the client gave up
        key = f"key-{fault.kind}-{fault.status}"
        server.faults = FaultPlan([fault])
        dep = c.create_deposition(c_meta(key), key)
        mine = [r for r in drafts(server) if key in json.dumps(r["metadata"])]
        assert len(mine) == 1 and mine[0]["id"] == dep["id"]


def c_meta(key: str) -> dict[str, Any]:
    from imagine.publish.zenodo import with_key

    return with_key(META, key)


def test_create_that_really_failed_is_retried(server: Any) -> None:
    c = client(server)
    server.faults = FaultPlan([Fault("status", "POST", "/deposit/depositions$", status=503, times=2)])
    c.create_deposition(c_meta("k2"), "k2")
    assert len(drafts(server)) == 1


def test_publish_that_failed_after_it_succeeded_is_reconciled(server: Any, tmp_path: Path) -> None:
    c = client(server)
    dep = c.create_deposition(c_meta("k3"), "k3")
    (tmp_path / "a.csv").write_bytes(b"1,2\n")
    c.upload(dep["links"]["bucket"], tmp_path / "a.csv", "a.csv", file_md5(tmp_path / "a.csv"))
    server.faults = FaultPlan([Fault("after", "POST", "/actions/publish", status=502)])
    pub = c.publish(dep["id"])
    assert pub["state"] == "done" and pub["doi"] == f"10.5072/zenodo.{dep['id']}"
    assert [x.status for x in c.calls if x.url.endswith("/actions/publish")] == [502]


def test_new_version_retry_never_makes_a_second_draft(server: Any, tmp_path: Path) -> None:
    c = client(server)
    dep = c.create_deposition(c_meta("k4"), "k4")
    (tmp_path / "a.csv").write_bytes(b"1,2\n")
    c.upload(dep["links"]["bucket"], tmp_path / "a.csv", "a.csv", file_md5(tmp_path / "a.csv"))
    c.publish(dep["id"])
    server.faults = FaultPlan([Fault("after", "POST", "/actions/newversion", status=504)])
    new = c.new_version(dep["id"])
    assert [f["filename"] for f in new["files"]] == ["a.csv"]
    again = c.new_version(dep["id"])  # e.g. a re-run after a crash
    assert again["id"] == new["id"]
    assert len([r for r in drafts(server) if r["state"] == "unsubmitted"]) == 1


# ------------------------------------------------------------------ uploads


@pytest.mark.parametrize("stream_md5", [True, False])
def test_upload_streams_verifies_md5_and_survives_a_reset(server: Any, tmp_path: Path, stream_md5: bool) -> None:
    c = client(server, stream_md5=stream_md5)
    dep = c.create_deposition(META, "k")
    big = tmp_path / "shard.zip"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    md5 = file_md5(big)
    server.faults = FaultPlan([Fault("reset", "PUT", "/files/", after_bytes=1_500_000)])
    obj = c.upload(dep["links"]["bucket"], big, "shard.zip", md5)
    assert obj["checksum"] == f"md5:{md5}" and obj["size"] == big.stat().st_size
    assert [x.status for x in c.calls if x.method == "PUT"] == [201]  # one logical call, retried inside
    assert len(c.sleeps) == 1
    stored = server.repo.file_path(server.repo.records[str(dep["id"])], "shard.zip")
    assert file_md5(stored) == md5


@pytest.mark.parametrize("stream_md5", [True, False])
def test_file_changed_between_checksum_and_upload(server: Any, tmp_path: Path, stream_md5: bool) -> None:
    c = client(server, stream_md5=stream_md5)
    dep = c.create_deposition(META, "k")
    f = tmp_path / "a.csv"
    f.write_bytes(b"1,2\n")
    stale = file_md5(f)
    f.write_bytes(b"3,4\n")
    with pytest.raises(FileChangedError) as info:
        c.upload(dep["links"]["bucket"], f, "a.csv", stale)
    assert str(f) in info.value.render() and "changed on disk" in info.value.render()


def test_dry_run_sends_nothing(server: Any) -> None:
    c = client(server, dry_run=True)
    assert c.create_deposition(META, "k") is None
    assert drafts(server) == []
    assert [x.render() for x in c.calls] == [f"POST {server.url}/api/deposit/depositions  # create draft"]


def test_download_checks_md5_and_refuses_corruption(server: Any, tmp_path: Path) -> None:
    c = client(server)
    dep = c.create_deposition(c_meta("k5"), "k5")
    (tmp_path / "a.csv").write_bytes(b"1,2\n")
    c.upload(dep["links"]["bucket"], tmp_path / "a.csv", "a.csv", file_md5(tmp_path / "a.csv"))
    c.publish(dep["id"])
    rec = c.get_record(dep["id"])
    url = rec["files"][0]["links"]["self"]
    assert c.download(url, tmp_path / "ok.csv", file_md5(tmp_path / "a.csv")) == file_md5(tmp_path / "a.csv")
    with pytest.raises(RemoteError, match="checksum mismatch"):
        c.download(url, tmp_path / "bad.csv", "0" * 32)
    assert not (tmp_path / "bad.csv").exists() and not list(tmp_path.glob(".bad.csv*"))


def test_413_and_other_client_errors_are_not_retried(server: Any, tmp_path: Path) -> None:
    c = client(server)
    dep = c.create_deposition(META, "k")
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    server.faults = FaultPlan([Fault("status", "PUT", "/files/", status=413, times=-1)])
    with pytest.raises(RemoteError) as info:
        c.upload(dep["links"]["bucket"], f, "a.bin", file_md5(f))
    assert info.value.status == 413 and "too large" in info.value.message
    assert c.sleeps == []


def test_missing_token_is_a_usage_error_naming_where_to_put_it(server: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from imagine.publish import deposit as D

    for var in ("ZENODO_TOKEN", "ZENODO_SANDBOX_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "dep"
    folder.mkdir()
    (folder / "zenodo.json").write_text(json.dumps({"metadata": META}))
    (folder / "README.md").write_text("# card\n")
    with pytest.raises(UsageError) as info:
        D.deposit(folder, server.url)
    assert "ZENODO_TOKEN" in info.value.render() and "mode 600" in info.value.render()
    assert drafts(server) == []
