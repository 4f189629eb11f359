"""Full deposits under random injected faults: every run ends published exactly once with matching
checksums, or with a clear error and a state that a re-run finishes — never a duplicate draft,
never a silent mismatch. The search lags behind creates (``lag``), downloads are cut mid-file and
resumed. Seeded; bounded in count and time.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from imagine.kernel import ImagineError
from imagine.publish import deposit as D
from imagine.publish.localrepo import Fault, FaultPlan, start_server
from imagine.publish.zenodo import ZenodoClient

TOKEN = "fault-token-91c3"
RUNS = 14
MAX_RERUNS = 10
META = {"upload_type": "dataset", "title": "Plankton imagery under faults", "description": "ZooScan vignettes.",
        "creators": [{"name": "Doe, Jane", "affiliation": "LOV"}], "license": "cc-by-4.0"}


def client(url: str) -> ZenodoClient:
    # read timeout below the injected slow delay, so "slow" faults become client-side timeouts
    return ZenodoClient(url + "/api", TOKEN, timeout=(2.0, 0.4), max_retries=1, backoff=0.01,
                        sleep=lambda s: time.sleep(min(s, 0.01)))


def until_done(fn: Any, errors: list[str]) -> Any:
    """Call ``fn`` until it succeeds, as a user re-running the command would; collect the errors."""
    for _ in range(MAX_RERUNS):
        try:
            return fn()
        except ImagineError as exc:
            msg = exc.render()
            assert TOKEN not in msg
            assert msg.strip() and "Traceback" not in msg
            errors.append(msg)
    pytest.fail(f"not finished after {MAX_RERUNS} re-runs: {errors[-3:]}")


def records_with_key(server: Any, key: str) -> list[dict[str, Any]]:
    return [r for r in server.repo.records.values() if not r.get("deleted") and key in json.dumps(r["metadata"])]


def check_published(server: Any, folder: Path, result: D.DepositResult, n_versions: int) -> None:
    state = json.loads((folder / D.STATE_FILE).read_text())
    mine = records_with_key(server, state["key"])
    assert len(mine) == n_versions, "a duplicate draft or record was created"
    assert all(r["state"] == "done" for r in mine), "a stray draft was left behind"
    rec = server.repo.records[str(result.record_id)]
    local = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir() if not p.name.startswith(".")}
    assert {f["key"]: f["md5"] for f in rec["published"]["files"]} == local
    for f in rec["published"]["files"]:  # the bytes on the server's disk, not just its bookkeeping
        stored = server.repo.root / "files" / rec["bucket"] / f["path"]
        assert hashlib.md5(stored.read_bytes()).hexdigest() == f["md5"]
    t = state["targets"][server.url + "/api"]
    assert t["phase"] == "published" and t["doi"] == result.doi and t["record_id"] == result.record_id


def test_random_faults_never_duplicate_and_never_mismatch(tmp_path: Path) -> None:
    # lag: the search-backed draft listing misses a new draft for the next 2 list calls (Zenodo's search lag)
    # plus a few downloads cut after 70 kB (besides the random ones), so resuming is always exercised
    plan = FaultPlan([Fault("reset", "GET", r"images-\d+\.zip/content$", after_bytes=70_000, times=4)],
                     rate=0.2, seed=20261207, delay=0.6, lag=2)
    srv = start_server(tmp_path / "repo", tokens={TOKEN: 1}, faults=plan)
    rng = random.Random(7)
    errors: list[str] = []
    reruns = 0
    t0 = time.monotonic()
    try:
        for run in range(RUNS):
            folder = tmp_path / f"dep{run}"
            folder.mkdir()
            (folder / "zenodo.json").write_text(json.dumps({"metadata": {**META, "version": "1"}}))
            (folder / "README.md").write_text(f"# run {run}\n")
            for i in range(3):
                (folder / f"images-{i:03d}.zip").write_bytes(rng.randbytes(rng.randrange(1, 400_000)))
            D.write_manifest(folder)
            before = len(errors)
            r = until_done(lambda f=folder: D.deposit(f, client=client(srv.url)), errors)
            check_published(srv, folder, r, 1)
            if run % 2 == 0:  # a new version under faults too: one file changed, one added
                (folder / "images-001.zip").write_bytes(rng.randbytes(50_000))
                (folder / "extra.csv").write_bytes(b"id,label\n1,copepod\n")
                (folder / "zenodo.json").write_text(json.dumps({"metadata": {**META, "version": "2"}}))
                D.write_manifest(folder)
                r2 = until_done(lambda f=folder: D.new_version(f, client=client(srv.url)), errors)
                check_published(srv, folder, r2, 2)
                assert r2.conceptdoi == r.conceptdoi and r2.record_id != r.record_id
                assert srv.repo.records[str(r2.record_id)]["published"]["metadata"]["version"] == "2"
            reruns += len(errors) > before
            # fetch back through the faults: byte-identical files or an error, never silent corruption
            latest = r.record_id if run % 2 else r2.record_id
            got = until_done(lambda rid=latest, run=run: D.fetch(rid, tmp_path / f"got{run}", client=client(srv.url),
                                                                 overwrite=True), errors)
            for f in got.files:
                assert (tmp_path / f"got{run}" / f["name"]).read_bytes() == (folder / f["name"]).read_bytes()
    finally:
        srv.shutdown()
        srv.server_close()
    kinds = {f["kind"] for f in plan.fired}
    assert kinds == {"reset", "status", "ratelimit", "after", "slow"}, kinds  # every fault kind was exercised
    assert len(plan.fired) > 40
    assert reruns >= 3, errors  # several runs really needed the resumable state
    assert any(e["status"] == 206 for e in srv.log), "no download was ever resumed with a Range request"
    assert time.monotonic() - t0 < 90
