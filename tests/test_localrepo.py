"""The local Zenodo-compatible repository answers as Zenodo does (codes, bodies, limits, OAI-PMH, faults).

Every test talks HTTP to a real server started on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from defusedxml import ElementTree as ET

from imagine.publish.localrepo import Fault, FaultPlan, LocalRepository, start_server

FIXTURES = Path(__file__).parent / "fixtures" / "zenodo"
TOKEN = "local-test-token-5a1f"
META = {"upload_type": "dataset", "title": "Fish at Lofoten observatory", "description": "Fish crops.",
        "creators": [{"name": "Doe, Jane", "affiliation": "UiT"}], "license": "CC-BY-4.0",
        "keywords": ["fish", "observatory"]}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1, "other-user-token": 2}, quota=10_000_000, max_files=5,
                       rate_limit=1000)
    yield srv
    srv.shutdown()
    srv.server_close()


def api(server: Any, path: str) -> str:
    return f"{server.url}/api{path}"


def call(server: Any, method: str, path: str, token: str | None = TOKEN, **kw: Any) -> requests.Response:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else api(server, path)
    return requests.request(method, url, headers=headers, timeout=10, **kw)


def shape(doc: Any) -> Any:
    """Key structure of a JSON document (keys and value types), for comparing with recorded answers."""
    if isinstance(doc, dict):
        return {k: shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [shape(doc[0])] if doc else []
    return type(doc).__name__


def draft_with_file(server: Any, data: bytes = b"4, 5, 6", key: str = "my_third_file.csv") -> dict[str, Any]:
    dep = call(server, "POST", "/deposit/depositions", json={"metadata": META}).json()
    r = call(server, "PUT", f"{dep['links']['bucket']}/{key}", data=data)
    assert r.status_code == 201, r.text
    return dep


def test_missing_or_wrong_token_is_403_not_401(server: Any) -> None:
    for tok in (None, "not-a-token"):
        r = call(server, "POST", "/deposit/depositions", token=tok, json={})
        assert r.status_code == 403
        assert r.json() == {"status": 403, "message": "Permission denied."}
    # somebody else's draft is not yours
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    assert call(server, "GET", f"/deposit/depositions/{dep['id']}", token="other-user-token").status_code == 403


def test_create_matches_the_recorded_sandbox_answer(server: Any) -> None:
    r = call(server, "POST", "/deposit/depositions", json={})
    assert r.status_code == 201
    mine = r.json()
    real = json.loads((FIXTURES / "legacy_sandbox_2024_zenodraft_101.json").read_text())
    assert set(mine) == set(real)
    assert set(mine["links"]) == set(real["links"])
    assert mine["state"] == "unsubmitted" and mine["submitted"] is False
    assert isinstance(mine["conceptrecid"], str) and isinstance(mine["id"], int)
    # Zenodo hard-codes prereserve_doi to 10.5281 even on a test instance
    assert mine["metadata"]["prereserve_doi"]["doi"] == f"10.5281/zenodo.{mine['id']}"
    # listings lack the bucket link
    listed = call(server, "GET", "/deposit/depositions").json()
    assert isinstance(listed, list) and "bucket" not in listed[0]["links"]


def test_metadata_put_is_a_full_replace_with_zenodo_normalisation(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    r = call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"metadata": {**META, "keyword": ["typo"]}})
    assert r.status_code == 200
    m = r.json()["metadata"]
    assert m["license"] == "cc-by-4.0"  # lower-cased
    assert "keyword" not in m  # unknown metadata keys silently dropped
    assert m["creators"][0] == {"name": "Doe, Jane", "affiliation": "UiT"}
    assert m["imprint_publisher"] == "Zenodo"
    r = call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"metadata": {"title": "Only a title"}})
    assert "creators" not in r.json()["metadata"]  # full replace
    r = call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"unknownkey": 1, "metadata": {}})
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "unknownkey", "messages": ["Unknown field."]}]
    r = call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"metadata": {"license": "cc-by-9999"}})
    assert r.status_code == 400
    assert r.json()["errors"][0] == {"field": "metadata.license", "messages": ["Invalid license provided: cc-by-9999"]}
    r = call(server, "PUT", f"/deposit/depositions/{dep['id']}", data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_bucket_upload_201_with_md5_prefix_and_overwrite(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    r = call(server, "PUT", f"{dep['links']['bucket']}/my_third_file.csv", data=b"4, 5, 6")
    assert r.status_code == 201
    obj = r.json()
    # the value zenodo-rdm's own quickstart test expects for these 7 bytes
    assert obj["checksum"] == "md5:c2d626f8beba73ad0cf4e66214f7d949"
    assert obj["size"] == 7 and obj["mimetype"] == "text/csv" and obj["is_head"] is True
    r = call(server, "PUT", f"{dep['links']['bucket']}/my_third_file.csv", data=b"7, 8")
    assert r.json()["checksum"] == "md5:" + hashlib.md5(b"7, 8").hexdigest()
    files = call(server, "GET", f"/deposit/depositions/{dep['id']}/files").json()
    assert len(files) == 1 and files[0]["checksum"] == hashlib.md5(b"7, 8").hexdigest()  # legacy: no prefix
    # production quirks: GET bucket and DELETE bucket object answer 500; the deposition file route works
    assert call(server, "GET", dep["links"]["bucket"]).status_code == 500
    assert call(server, "DELETE", f"{dep['links']['bucket']}/my_third_file.csv").status_code == 500
    assert call(server, "PUT", f"/deposit/depositions/{dep['id']}/files", json=[]).status_code == 405
    assert call(server, "DELETE", f"/deposit/depositions/{dep['id']}/files/{files[0]['id']}").status_code == 204
    assert call(server, "GET", f"/deposit/depositions/{dep['id']}/files").json() == []


def test_file_count_and_quota_limits(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    for i in range(5):
        assert call(server, "PUT", f"{dep['links']['bucket']}/f{i}.txt", data=b"x").status_code == 201
    r = call(server, "PUT", f"{dep['links']['bucket']}/f5.txt", data=b"x")
    assert r.status_code == 400
    assert r.json()["message"] == "Uploading selected files will result in exceeding the max amount per record."
    dep2 = call(server, "POST", "/deposit/depositions", json={}).json()
    r = call(server, "PUT", f"{dep2['links']['bucket']}/big.bin", data=b"\0" * 10_000_001)
    assert r.status_code == 400 and r.json()["message"] == "Bucket quota exceeded."


def test_publish_validation_then_202_then_404(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={"metadata": {"title": "ab"}}).json()
    r = call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    assert r.status_code == 400
    fields = {e["field"]: e["messages"] for e in r.json()["errors"]}
    assert fields["metadata.title"] == ["Shorter than minimum length 3."]
    assert "metadata.creators" in fields and "files.enabled" in fields
    dep = draft_with_file(server)
    r = call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    assert r.status_code == 202
    pub = r.json()
    real = json.loads((FIXTURES / "legacy_sandbox_2024_zenodraft_131.json").read_text())
    assert set(real) <= set(pub)
    assert pub["state"] == "done" and pub["submitted"] is True
    assert pub["doi"] == f"10.5072/zenodo.{dep['id']}" and pub["conceptdoi"] == f"10.5072/zenodo.{dep['conceptrecid']}"
    assert pub["links"]["self"].endswith(f"/api/records/{dep['id']}")
    assert call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish").status_code == 404
    assert call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"metadata": META}).status_code == 404
    assert call(server, "DELETE", f"/deposit/depositions/{dep['id']}").status_code == 404
    assert call(server, "PUT", f"{dep['links']['bucket']}/late.txt", data=b"x").status_code == 403


def test_discard_and_delete_are_204_with_empty_body(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    r = call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/discard")
    assert r.status_code == 204 and r.content == b""
    assert call(server, "GET", f"/deposit/depositions/{dep['id']}").status_code == 404
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    assert call(server, "DELETE", f"/deposit/depositions/{dep['id']}").status_code == 204


def test_newversion_returns_the_new_draft_with_files_and_repeat_is_400(server: Any) -> None:
    dep = draft_with_file(server)
    call(server, "PUT", f"/deposit/depositions/{dep['id']}", json={"metadata": {**META, "version": "1.0",
                                                                             "publication_date": "2020-01-01"}})
    assert call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish").status_code == 202
    r = call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/newversion")
    assert r.status_code == 201
    new = r.json()
    assert new["id"] != dep["id"] and new["conceptrecid"] == dep["conceptrecid"]
    assert new["state"] == "unsubmitted"
    assert new["metadata"]["version"] == "" and new["metadata"]["publication_date"] != "2020-01-01"
    assert [f["filename"] for f in new["files"]] == ["my_third_file.csv"]
    real = json.loads((FIXTURES / "legacy_sandbox_2024_zenodraft_151.json").read_text())
    assert set(real["links"]) <= set(new["links"])
    r = call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/newversion")
    assert r.status_code == 400 and r.json()["errors"][0]["messages"] == ["Please remove all files first."]
    # the new API route is idempotent and returns the same draft
    again = call(server, "POST", f"/records/{dep['id']}/versions")
    assert again.status_code == 201 and again.json()["id"] == new["id"]
    # newversion of a never-published draft: 404
    d2 = call(server, "POST", "/deposit/depositions", json={}).json()
    assert call(server, "POST", f"/deposit/depositions/{d2['id']}/actions/newversion").status_code == 404


def test_published_record_representations_and_download(server: Any) -> None:
    import rdflib

    dep = draft_with_file(server, b"a,b\n1,2\n", "table.csv")
    call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    rid = dep["id"]
    assert call(server, "GET", f"/records/{rid + 100}", token=None).status_code == 404
    rec = call(server, "GET", f"/records/{rid}", token=None).json()
    real = json.loads(Path(FIXTURES / "newapi_trace_sandbox_2025-10-09.jsonl").read_text().splitlines()[-1])["body"]
    assert set(real) - {"swh"} <= set(rec)
    assert set(real["files"][0]) == set(rec["files"][0])
    assert rec["files"][0]["checksum"] == "md5:" + hashlib.md5(b"a,b\n1,2\n").hexdigest()
    dl = call(server, "GET", rec["files"][0]["links"]["self"], token=None)
    assert dl.content == b"a,b\n1,2\n" and dl.headers["ETag"] == rec["files"][0]["checksum"].join('""')
    ld = call(server, "GET", f"/records/{rid}", token=None, headers={"Accept": "application/ld+json"}).json()
    assert ld["@type"] == "Dataset" and ld["identifier"].endswith(f"10.5072/zenodo.{rid}")
    xml = call(server, "GET", f"/records/{rid}", token=None, headers={"Accept": "application/dcat+xml"}).text
    g = rdflib.Graph().parse(data=xml, format="xml")
    dcat = rdflib.Namespace("http://www.w3.org/ns/dcat#")
    assert len(list(g.subjects(rdflib.RDF.type, dcat.Dataset))) == 1
    assert len(list(g.objects(None, dcat.downloadURL))) == 1
    assert call(server, "GET", f"/records/{rid}", headers={"Accept": "text/x-unknown"}).status_code == 406
    latest = call(server, "GET", f"/records/{rid}/versions/latest", allow_redirects=False)
    assert latest.status_code == 301 and latest.headers["Location"].endswith(f"/records/{rid}")


def test_oai_pmh_for_harvesters(server: Any) -> None:
    dep = draft_with_file(server)
    call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    ns = {"o": "http://www.openarchives.org/OAI/2.0/", "dc": "http://purl.org/dc/elements/1.1/"}
    base = f"{server.url}/oai2d"
    root = ET.fromstring(requests.get(base, params={"verb": "Identify"}, timeout=10).content)
    assert root.find("o:Identify/o:protocolVersion", ns).text == "2.0"
    root = ET.fromstring(requests.get(base, params={"verb": "ListMetadataFormats"}, timeout=10).content)
    assert {e.text for e in root.iterfind(".//o:metadataPrefix", ns)} == {"oai_dc", "dcat"}
    ident = f"oai:zenodo.org:{dep['id']}"
    root = ET.fromstring(requests.get(base, params={"verb": "GetRecord", "metadataPrefix": "oai_dc",
                                                    "identifier": ident}, timeout=10).content)
    assert root.find(".//dc:title", ns).text == META["title"]
    assert f"https://doi.org/10.5072/zenodo.{dep['id']}" in [e.text for e in root.iterfind(".//dc:identifier", ns)]
    root = ET.fromstring(requests.get(base, params={"verb": "ListRecords", "metadataPrefix": "dcat"},
                                      timeout=10).content)
    assert len(root.findall(".//o:record", ns)) == 1
    root = ET.fromstring(requests.get(base, params={"verb": "GetRecord", "metadataPrefix": "marc",
                                                    "identifier": ident}, timeout=10).content)
    assert root.find("o:error", ns).get("code") == "cannotDisseminateFormat"


def test_rate_limit_headers_and_429(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1}, rate_limit=3)
    try:
        seen = [call(srv, "GET", "/deposit/depositions") for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen[:3]] == [2, 1, 0]
        assert all(r.headers["X-RateLimit-Limit"] == "3" for r in seen)
        assert int(seen[3].headers["Retry-After"]) >= 1
        assert int(seen[3].headers["X-RateLimit-Reset"]) > time.time()
    finally:
        srv.shutdown()
        srv.server_close()


def test_fault_injection_switchable_at_run_time(server: Any) -> None:
    r = requests.post(f"{server.url}/_faults", json={"faults": [
        {"kind": "status", "method": "GET", "path": "/deposit/depositions$", "status": 502, "times": 1},
        {"kind": "ratelimit", "method": "GET", "path": "/deposit/depositions$", "retry_after": 7, "times": 1},
        {"kind": "after", "method": "POST", "path": "/deposit/depositions$", "status": 500, "times": 1}]}, timeout=5)
    assert r.status_code == 200
    assert call(server, "GET", "/deposit/depositions").status_code == 502
    r = call(server, "GET", "/deposit/depositions")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert call(server, "POST", "/deposit/depositions", json={}).status_code == 500
    assert len(call(server, "GET", "/deposit/depositions").json()) == 1  # it did create the draft
    assert requests.post(f"{server.url}/_faults", json={"faults": [{"kind": "bogus"}]}, timeout=5).status_code == 400
    assert requests.get(f"{server.url}/_faults", timeout=5).json()["fired"] == 3


def test_connection_reset_mid_upload_keeps_nothing(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={}).json()
    server.faults = FaultPlan([Fault("reset", "PUT", "/files/", after_bytes=300_000)])
    with pytest.raises(requests.ConnectionError):
        call(server, "PUT", f"{dep['links']['bucket']}/big.bin", data=b"\1" * 2_000_000)
    assert call(server, "GET", f"/deposit/depositions/{dep['id']}/files").json() == []
    assert not list((Path(server.repo.root) / "tmp").iterdir())  # the partial upload was removed


def test_state_survives_restart(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1})
    dep = draft_with_file(srv)
    srv.shutdown()
    srv.server_close()
    repo = LocalRepository(tmp_path / "repo", tokens={TOKEN: 1})
    assert repo.records[str(dep["id"])]["files"][0]["md5"] == hashlib.md5(b"4, 5, 6").hexdigest()


def test_fault_spec_parsing() -> None:
    plan = FaultPlan.parse("status=503@POST:/actions/publish*2,reset@PUT:/files/,random:0.25:7")
    assert [(f.kind, f.method, f.status, f.times) for f in plan.faults] == [
        ("status", "POST", 503, 2), ("reset", "PUT", 503, 1)]
    assert plan.rate == 0.25 and plan.seed == 7
    from imagine.kernel import UsageError

    with pytest.raises(UsageError, match="bad fault"):
        FaultPlan.parse("explode@GET:/")


def test_free_port_was_used(server: Any) -> None:
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and port != 5005
    with socket.create_connection((host, port), timeout=2):
        pass


def test_serve_command_runs_the_repository(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "imagine.publish.cli", "serve", "--root", str(tmp_path / "r"),
                             "--port", "0", "--faults", "status=503@GET:/api/records/1$"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/api", line)
        assert m, line
        assert requests.get(f"{m.group(1)}/api/records/1", timeout=5).status_code == 503  # the injected fault
        assert requests.get(f"{m.group(1)}/api/records/1", timeout=5).status_code == 404  # then the real answer
        assert oct((tmp_path / "r" / "tokens.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(10)


def test_search_lag_hides_new_drafts_and_records_for_n_list_calls(server: Any) -> None:
    requests.post(f"{server.url}/_faults", json={"lag": 2}, timeout=5).raise_for_status()
    assert requests.get(f"{server.url}/_faults", timeout=5).json()["lag"] == 2
    dep = draft_with_file(server)

    def listed() -> list[int]:
        return [d["id"] for d in call(server, "GET", "/deposit/depositions").json()]

    assert call(server, "GET", f"/deposit/depositions/{dep['id']}").status_code == 200  # reads by id see it
    assert listed() == [] and listed() == [] and listed() == [dep["id"]]
    assert call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish").status_code == 202
    assert call(server, "GET", f"/records/{dep['id']}", token=None).status_code == 200
    hits = [call(server, "GET", "/records", token=None).json()["hits"]["total"] for _ in range(3)]
    assert hits == [0, 0, 1]
    second = call(server, "POST", "/deposit/depositions", json={}).json()
    assert listed() == [dep["id"]]
    server.faults = FaultPlan()  # switching the quirk off shows everything at once
    assert listed() == [second["id"], dep["id"]]
    assert FaultPlan.parse("lag=3,status@GET:/x").lag == 3
    assert requests.post(f"{server.url}/_faults", json={"lag": -1}, timeout=5).status_code == 400


def test_downloads_serve_byte_ranges(server: Any) -> None:
    data = bytes(range(256)) * 40
    dep = draft_with_file(server, data, "shard.bin")
    call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    url = call(server, "GET", f"/records/{dep['id']}", token=None).json()["files"][0]["links"]["self"]
    whole = call(server, "GET", url, token=None)
    assert whole.status_code == 200 and whole.content == data and whole.headers["Accept-Ranges"] == "bytes"
    part = call(server, "GET", url, token=None, headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == data[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert part.headers["ETag"] == whole.headers["ETag"]  # the ETag is the whole file's MD5
    mid = call(server, "GET", url, token=None, headers={"Range": "bytes=10-19"})
    assert mid.status_code == 206 and mid.content == data[10:20]
    tail = call(server, "GET", url, token=None, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    bad = call(server, "GET", url, token=None, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(data)}"
    assert call(server, "GET", url, token=None, headers={"Range": "pages=1-2"}).status_code == 200  # ignored
    bucket = call(server, "GET", f"{dep['links']['bucket']}/shard.bin", headers={"Range": "bytes=5000-"})
    assert bucket.status_code == 206 and bucket.content == data[5000:]
    seen = [(e["status"], e["range"]) for e in server.log if e["path"].endswith("/content")]
    assert seen[:2] == [(200, None), (206, "bytes=1000-")] and (416, f"bytes={len(data)}-") in seen


def test_connection_reset_mid_download(server: Any) -> None:
    data = hashlib.sha256(b"x").digest() * 20_000  # 640 kB
    dep = draft_with_file(server, data, "big.bin")
    call(server, "POST", f"/deposit/depositions/{dep['id']}/actions/publish")
    url = call(server, "GET", f"/records/{dep['id']}", token=None).json()["files"][0]["links"]["self"]
    server.faults = FaultPlan([Fault("reset", "GET", "/content$", after_bytes=100_000)])
    got = bytearray()
    with pytest.raises(requests.RequestException):
        with requests.get(url, stream=True, timeout=10) as r:
            assert r.status_code == 200
            for chunk in r.iter_content(8192):
                got += chunk
    assert 0 < len(got) <= 100_000 and data.startswith(bytes(got))
    rest = requests.get(url, headers={"Range": f"bytes={len(got)}-"}, timeout=10)
    assert rest.status_code == 206 and bytes(got) + rest.content == data


def test_inveniordm_draft_file_routes(server: Any) -> None:
    dep = call(server, "POST", "/deposit/depositions", json={"metadata": META}).json()
    rid = dep["id"]
    base = f"/records/{rid}/draft/files"
    data = b"frame,label\n1,cod\n2,haddock\n"
    md5 = hashlib.md5(data).hexdigest()
    assert call(server, "POST", base, token=None, json=[{"key": "x.csv"}]).status_code == 403
    init = call(server, "POST", base, json=[{"key": "labels.csv", "size": len(data), "checksum": f"md5:{md5}"},
                                            {"key": "notes.txt"}])
    assert init.status_code == 201, init.text
    body = init.json()
    assert set(body) == {"enabled", "entries", "default_preview", "order", "links"}
    assert [(e["key"], e["status"]) for e in body["entries"]] == [("labels.csv", "pending"), ("notes.txt", "pending")]
    assert set(body["entries"][0]["links"]) == {"self", "content", "commit"}
    dup = call(server, "POST", base, json=[{"key": "labels.csv"}])
    assert dup.status_code == 400 and dup.json()["message"] == "File with key labels.csv already exists."
    assert call(server, "POST", f"{base}/labels.csv/commit").status_code == 400  # no content yet
    put = call(server, "PUT", f"{base}/labels.csv/content", data=data,
               headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 200 and put.json()["status"] == "pending"
    assert call(server, "PUT", f"{base}/ghost.csv/content", data=b"1").status_code == 404
    commit = call(server, "POST", f"{base}/labels.csv/commit")
    assert commit.status_code == 200
    c = commit.json()
    assert c["status"] == "completed" and c["checksum"] == f"md5:{md5}" and c["size"] == len(data)
    assert {"file_id", "version_id", "bucket_id", "mimetype", "storage_class"} <= set(c)
    again = call(server, "PUT", f"{base}/labels.csv/content", data=b"other")
    assert again.status_code == 400 and again.json()["message"] == 'File with key "labels.csv" is already committed.'
    meta = call(server, "GET", f"{base}/labels.csv")
    assert meta.status_code == 200 and meta.json()["checksum"] == f"md5:{md5}"
    listed = call(server, "GET", base).json()["entries"]
    assert [(e["key"], e["status"]) for e in listed] == [("labels.csv", "completed"), ("notes.txt", "pending")]
    # the same file through the legacy API and the draft download
    legacy = call(server, "GET", f"/deposit/depositions/{rid}/files").json()
    assert [(f["filename"], f["checksum"]) for f in legacy] == [("labels.csv", md5)]
    assert call(server, "GET", f"{base}/labels.csv/content").content == data
    assert call(server, "GET", f"{base}/labels.csv/content", token=None).status_code == 403
    assert call(server, "DELETE", f"{base}/notes.txt").status_code == 204
    assert call(server, "GET", f"{base}/notes.txt").status_code == 404
    assert call(server, "POST", f"/deposit/depositions/{rid}/actions/publish").status_code == 202
    assert call(server, "GET", base).status_code == 404  # published, no draft
    rec = call(server, "GET", f"/records/{rid}", token=None).json()
    assert [(f["key"], f["checksum"]) for f in rec["files"]] == [("labels.csv", f"md5:{md5}")]


def test_inveniordm_file_delete_limits_and_reset_mid_content(server: Any) -> None:
    rid = call(server, "POST", "/deposit/depositions", json={}).json()["id"]
    base = f"/records/{rid}/draft/files"
    too_many = call(server, "POST", base, json=[{"key": f"f{i}.bin"} for i in range(6)])  # max_files=5 here
    assert too_many.status_code == 400 and "max amount" in too_many.json()["message"]
    assert call(server, "POST", base, json=[{"key": "a/b.bin"}]).status_code == 400
    assert call(server, "POST", base, json={"key": "a.bin"}).status_code == 400
    assert call(server, "POST", base, json=[{"key": "big.bin"}]).status_code == 201
    server.faults = FaultPlan([Fault("reset", "PUT", "/draft/files/big.bin/content", after_bytes=200_000)])
    with pytest.raises(requests.ConnectionError):
        call(server, "PUT", f"{base}/big.bin/content", data=b"\2" * 1_000_000)
    assert not list((Path(server.repo.root) / "tmp").iterdir())  # nothing half-written kept
    assert call(server, "GET", f"{base}/big.bin").json()["status"] == "pending"
    assert call(server, "POST", f"{base}/big.bin/commit").status_code == 400
    assert call(server, "PUT", f"{base}/big.bin/content", data=b"\2" * 1_000_000).status_code == 200
    assert call(server, "POST", f"{base}/big.bin/commit").json()["size"] == 1_000_000
    assert call(server, "DELETE", f"{base}/big.bin").status_code == 204
    assert call(server, "GET", base).json()["entries"] == []
    assert call(server, "GET", f"/deposit/depositions/{rid}/files").json() == []
    assert call(server, "DELETE", f"{base}/big.bin").status_code == 404
