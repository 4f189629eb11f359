"""The README's main job, end to end on the bundled sample: a DOI on the local repository whose files
come back by ``fetch`` with matching checksums, and a FAIR score within FAIR EVA's cap."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from imagine.publish.cli import main


def test_main_job_reaches_a_doi(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    steps = {s["name"]: s for s in result["steps"]}
    for name in ("validate", "read", "convert to coco", "baseline", "audit", "describe", "FAIR check", "deposit"):
        assert steps[name]["ok"], name
    assert steps["read"]["stats"]["images"] == 23
    doi = steps["deposit"]["doi"]
    assert doi.startswith("10.5072/")
    assert 0 < steps["FAIR check"]["score"] <= 76.18 + 1e-6
    # what the job wrote is all there and consistent
    for f in ("baseline/card.json", "audit/audit.json", "metadata/dcat.ttl", "metadata/croissant.json",
              "metadata/zenodo.json", "deposit", "demo.json"):
        assert (out / f).exists(), f
    card = json.loads((out / "baseline/card.json").read_text())
    assert card["task"] in ("detect", "detection")
    # the published record's files come back with their checksums (served by a local repository again)
    from imagine.publish.deposit import fetch
    from imagine.publish.localrepo import start_server

    server = start_server(out / "localrepo", port=0)
    try:
        host, port = server.server_address[:2]
        got = fetch(steps["deposit"]["record_id"], tmp_path / "fetched", f"http://{host}:{port}",
                    token=server.token)
    finally:
        server.shutdown()
        server.server_close()
    names = {p.name for p in (tmp_path / "fetched").rglob("*") if p.is_file()}
    assert {"dcat.ttl", "croissant.json", "card.json"} <= names, names
    assert got.doi == doi and got.manifest_checked and len(got.files) == len(names)
