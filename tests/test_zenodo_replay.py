"""The client against recorded real Zenodo answers, replayed by a small local HTTP server.

The bodies are real sandbox responses (zenodraft 2024 legacy flow, a 2025 new-API trace), kept in
tests/fixtures/zenodo/ (see SOURCE.md); only their host is rewritten to the replay server.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from imagine.kernel import RemoteError
from imagine.publish import deposit as D
from imagine.publish.zenodo import ZenodoClient

FIX = Path(__file__).parent / "fixtures" / "zenodo"
SANDBOX = "https://sandbox.zenodo.org"


def recorded(name: str) -> str:
    return (FIX / f"legacy_sandbox_2024_zenodraft_{name}.json").read_text()


def trace(step: str) -> str:
    for line in (FIX / "newapi_trace_sandbox_2025-10-09.jsonl").read_text().splitlines():
        doc = json.loads(line)
        if doc["step"].startswith(step):
            return json.dumps(doc["body"])
    raise KeyError(step)


# Real error bodies quoted in the reference notes (zenodo#2543, zenodo#2506, showyourwork#238, cloudknot#241).
ERR_403 = '{"status": 403, "message": "Permission denied."}'
ERR_500 = ('{"error_id":"381670a8a1b34bcb9fd1df1f8aa8c0d1","message":"The server encountered an internal error and '
           'was unable to complete your request. Either the server is overloaded or there is an error in the '
           'application.","status":500}')
ERR_OLD_400 = ('{"status":400,"message":"Validation error.","errors":[{"field":"metadata.creators.0.type",'
               '"message":"Unknown field name."}]}')
BUCKET_OBJ = json.dumps({  # shape of the 2025 production answer (pudl#4061); checksum of b"4, 5, 6" (zenodo-rdm test)
    "created": "2025-02-14T03:55:06.398956+00:00", "updated": "2025-02-14T03:55:10.134415+00:00",
    "version_id": "08b4ca15-6ee0-4ee4-9e18-8623f3adcfaf", "key": "my_third_file.csv", "size": 7,
    "mimetype": "text/csv", "checksum": "md5:c2d626f8beba73ad0cf4e66214f7d949",
    "links": {"self": f"{SANDBOX}/api/files/f75318c8-35fe-4bdf-ba75-03e8c35d1534/my_third_file.csv"},
    "is_head": True, "delete_marker": False})


class Replay(ThreadingHTTPServer):
    """Answers (method, path regex) with queued recorded (status, body) pairs; logs every request."""

    daemon_threads = True

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self.log: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _H)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def on(self, method: str, path: str, *answers: tuple[int, str]) -> None:
        self.routes[(method, path)] = list(answers)


class _H(BaseHTTPRequestHandler):
    server: Replay
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def _any(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.server.log.append((self.command, self.path, dict(self.headers)))
        for (m, p), answers in self.server.routes.items():
            if m == self.command and re.fullmatch(p, self.path.split("?")[0]):
                status, body = answers[0] if len(answers) == 1 else answers.pop(0)
                break
        else:
            status, body = 404, '{"status": 404, "message": "Not found."}'
        data = body.replace(SANDBOX, self.server.url).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Limit", "1000")
        self.send_header("X-RateLimit-Remaining", "999")
        self.send_header("Retry-After", "60")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture
def replay() -> Any:
    srv = Replay()
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def client(srv: Replay) -> ZenodoClient:
    return ZenodoClient(srv.url + "/api", "replay-token", backoff=0.01, sleep=lambda s: None)


def test_legacy_flow_on_recorded_sandbox_answers(replay: Replay, tmp_path: Path) -> None:
    replay.on("POST", "/api/deposit/depositions", (201, recorded("101")))
    replay.on("PUT", "/api/deposit/depositions/101", (200, recorded("111")))
    replay.on("PUT", "/api/files/f75318c8-35fe-4bdf-ba75-03e8c35d1534/my_third_file.csv", (201, BUCKET_OBJ))
    replay.on("POST", "/api/deposit/depositions/101/actions/publish", (202, recorded("131")))
    c = client(replay)
    dep = c.create_deposition({"title": "The title"}, "k")
    assert dep["id"] == 101 and dep["links"]["bucket"] == f"{replay.url}/api/files/f75318c8-35fe-4bdf-ba75-03e8c35d1534"
    upd = c.update_metadata(101, {"title": "The title"})
    assert upd["metadata"]["license"] == "cc-by-4.0" and upd["state"] == "unsubmitted"
    f = tmp_path / "my_third_file.csv"
    f.write_bytes(b"4, 5, 6")
    obj = c.upload(dep["links"]["bucket"], f, f.name, "c2d626f8beba73ad0cf4e66214f7d949")
    assert obj["size"] == 7
    pub = c.publish(101)
    assert pub["state"] == "done" and pub["doi"] == "10.5072/zenodo.131" and pub["conceptrecid"] == "100"
    methods = [(m, p.split("?")[0]) for m, p, _ in replay.log]
    assert methods == [("POST", "/api/deposit/depositions"), ("PUT", "/api/deposit/depositions/101"),
                       ("PUT", "/api/files/f75318c8-35fe-4bdf-ba75-03e8c35d1534/my_third_file.csv"),
                       ("POST", "/api/deposit/depositions/101/actions/publish")]
    for _, path, headers in replay.log:
        assert headers["Authorization"] == "Bearer replay-token" and "replay-token" not in path
        assert headers["User-Agent"].startswith("imagine-publish/")


def test_a_server_md5_that_differs_is_never_accepted(replay: Replay, tmp_path: Path) -> None:
    replay.on("PUT", "/api/files/b/x.csv", (201, BUCKET_OBJ))
    f = tmp_path / "x.csv"
    f.write_bytes(b"4, 5, 7")  # not the bytes the recorded checksum belongs to
    from hashlib import md5

    with pytest.raises(RemoteError, match="server stored a different file"):
        client(replay).upload(f"{replay.url}/api/files/b", f, "x.csv", md5(b"4, 5, 7").hexdigest())


def test_recorded_file_list_checksums_without_prefix_count_as_uploaded(replay: Replay, tmp_path: Path) -> None:
    dep121 = json.loads(recorded("121"))
    files = dep121["files"]
    files[0].update({"filename": "my_third_file.csv", "checksum": "c2d626f8beba73ad0cf4e66214f7d949", "filesize": 7})
    replay.on("GET", "/api/deposit/depositions/121/files", (200, json.dumps(files)))
    folder = tmp_path / "dep"
    folder.mkdir()
    (folder / "my_third_file.csv").write_bytes(b"4, 5, 6")
    result = D.DepositResult("x", None, None, None, None, "draft")
    state: dict[str, Any] = {"version": 1, "targets": {}}
    t: dict[str, Any] = {"files": {}}
    D._sync_files(client(replay), dep121, D.deposit_files(folder), t, folder, state, result)
    assert result.skipped == ["my_third_file.csv"] and result.uploaded == []


def test_listing_entries_lack_the_bucket_so_the_draft_is_read_again(replay: Replay) -> None:
    listing = json.loads(recorded("depositions"))
    listing[0]["metadata"]["related_identifiers"] = [
        {"identifier": "urn:imagine:deposit:abc", "relation": "isAlternateIdentifier", "scheme": "urn"}]
    replay.on("GET", "/api/deposit/depositions", (200, json.dumps(listing)))
    replay.on("GET", "/api/deposit/depositions/151", (200, recorded("151")))
    c = client(replay)
    assert "bucket" not in listing[0]["links"]
    found = c.find_by_key("abc")
    assert found is not None and found["links"]["bucket"].startswith(replay.url)
    assert c.find_by_key("other-key") is None


def test_publish_retry_reconciles_on_recorded_states(replay: Replay) -> None:
    # first publish answer lost (500 with error_id), the deposition then reads as published
    replay.on("POST", "/api/deposit/depositions/131/actions/publish", (500, ERR_500))
    replay.on("GET", "/api/deposit/depositions/131", (200, recorded("131")))
    assert client(replay).publish(131)["doi"] == "10.5072/zenodo.131"
    # an edit draft (state inprogress, submitted true) is not "published": retry, then give a clear error
    replay.on("POST", "/api/deposit/depositions/141/actions/publish", (500, ERR_500))
    replay.on("GET", "/api/deposit/depositions/141", (200, recorded("141")))
    with pytest.raises(RemoteError) as info:
        client(replay).publish(141)
    assert "The server encountered an internal error" in info.value.message and "re-run" in info.value.message


def test_new_version_on_recorded_answers(replay: Replay) -> None:
    replay.on("POST", "/api/records/131/versions", (201, recorded("151")))
    replay.on("GET", "/api/deposit/depositions/151", (200, recorded("151")))
    replay.on("POST", "/api/deposit/depositions/131/actions/newversion", (201, recorded("151")))
    dep = client(replay).new_version(131)
    assert dep["id"] == 151 and dep["state"] == "unsubmitted" and "bucket" in dep["links"]
    # the recorded prereserve_doi has the production prefix on the sandbox: we never trust it
    assert dep["metadata"]["prereserve_doi"]["doi"] == "10.5281/zenodo.151"


def test_new_api_published_record_is_read(replay: Replay) -> None:
    replay.on("GET", "/api/records/346365", (200, trace("POST /api/records/346365/draft/actions/publish")))
    rec = client(replay).get_record(346365)
    assert rec["doi"] == "10.5072/zenodo.346365" and rec["files"][0]["checksum"].startswith("md5:")
    assert rec["files"][0]["links"]["self"].startswith(replay.url)


def test_recorded_error_bodies_become_readable_errors(replay: Replay) -> None:
    replay.on("GET", "/api/deposit/depositions/9", (403, ERR_403))
    replay.on("PUT", "/api/deposit/depositions/9", (400, ERR_OLD_400))
    c = client(replay)
    with pytest.raises(RemoteError) as info:
        c.get_deposition(9)
    assert info.value.status == 403 and "Permission denied." in info.value.message
    assert "sandbox token does not work on zenodo.org" in info.value.message
    with pytest.raises(RemoteError) as info:
        c.update_metadata(9, {})
    assert "metadata.creators.0.type: Unknown field name." in info.value.message
    assert len([x for x in replay.log if x[0] == "PUT"]) == 1  # a 400 is not retried
