"""Vocabularies: bundled subsets, the HTTP layer and WoRMS/GBIF/NVS look-ups against a local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagine.kernel import RemoteError
from imagine.publish.cli import main
from imagine.vocab import HttpClient, OfflineMiss, bundle, is_non_taxon, match_labels, read_mapping, write_mapping
from imagine.vocab.services import Gbif, Nvs, Worms
from tests.test_vocab_server import serve


@pytest.fixture(scope="module")
def server():
    with serve() as s:
        yield s


def client(tmp_path: Path, **kw) -> tuple[HttpClient, list[float]]:
    waits: list[float] = []
    kw.setdefault("min_interval", 0.0)
    return HttpClient(cache_dir=tmp_path / "cache", sleep=waits.append, **kw), waits


# ------------------------------------------------------------------ bundle


def test_bundled_concepts_resolve_by_uri_urn_and_code():
    flowcam = bundle.resolve("L22:TOOL1583")
    assert flowcam is not None and "FlowCam" in flowcam.label and flowcam.urn == "SDN:L22::TOOL1583"
    assert bundle.resolve("SDN:L22::TOOL1581").label.startswith("Hydroptic ZooSCAN")
    # https and a missing trailing slash are the same NVS concept
    assert bundle.concept("https://vocab.nerc.ac.uk/collection/L06/current/11") == bundle.resolve("L06:11")
    assert bundle.resolve("L05:180").deprecated and not bundle.resolve("L05:311").deprecated
    assert bundle.resolve("EU-THEME:ENVI").uri == "http://publications.europa.eu/resource/authority/data-theme/ENVI"
    assert bundle.resolve("L22:NOPE") is None
    src = bundle.sources()["collections"]
    for coll in ("L05", "L06", "L22", "P01", "P02", "P06", "C19", "EDMO", "OSO", "EU-THEME", "SPDX", "IANA", "WoRMS"):
        assert src[coll]["source"] and src[coll]["licence"] and src[coll]["version"]


def test_licences_and_media_types():
    lic = bundle.licence("cc-by-4.0")
    assert lic is not None and lic.uri == "https://spdx.org/licenses/CC-BY-4.0" and lic.zenodo_id == "cc-by-4.0"
    assert bundle.licence("https://spdx.org/licenses/MIT.html").spdx == "MIT"
    assert bundle.licence("CC BY") is None
    assert bundle.media_type("a/b/IMG_1.JPG") == ("image/jpeg", "JPEG")
    assert bundle.media_type("x.tar.gz") == ("application/gzip", "GZIP")
    assert bundle.media_type("noext") == (None, None)


@pytest.mark.parametrize("label,expected", [("debris", True), ("Bubbles", True), ("multiple objects", True),
                                            ("Diver", True), ("marine snow", True), ("Copepoda", False),
                                            ("Oblada melanura", False), ("fish", False)])
def test_non_taxon_labels(label, expected):
    assert is_non_taxon(label) is expected


def test_offline_matching_uses_bundled_names_and_keeps_non_taxa_unmapped():
    matches, findings = match_labels(["Oblada_melanura", "debris", "multiple objects", "Copepoda", "Dipldus vulgaris",
                                      "jellyfish"], offline=True)
    m = {x.label: x for x in matches}
    assert m["Oblada_melanura"].accepted_name == "Oblada melanurus"
    assert m["Oblada_melanura"].accepted_aphia_id == 1577363
    assert m["Oblada_melanura"].name_status == "unaccepted" and "unaccepted" in m["Oblada_melanura"].note
    assert m["debris"].status == m["multiple objects"].status == "non-taxon" and m["debris"].uri is None
    assert m["Copepoda"].lsid == "urn:lsid:marinespecies.org:taxname:1080"
    assert m["Dipldus vulgaris"].accepted_aphia_id == 127054 and m["Dipldus vulgaris"].needs_review
    assert m["jellyfish"].status == "unmatched"
    assert [f.place for f in findings if f.code == "taxon-unmatched"] == ["label 'jellyfish'"]


# ------------------------------------------------------------------ HTTP layer


def test_retries_on_503_then_caches(server, tmp_path):
    url, state = server
    http, waits = client(tmp_path)
    r = http.get(f"{url}/flaky")
    assert r.status == 200 and r.json() == {"ok": 3} and len(waits) == 2
    sent = http.requests_sent
    again = http.get(f"{url}/flaky")
    assert again.from_cache and again.json() == {"ok": 3} and http.requests_sent == sent
    # the cache is on disk, written atomically (no temporary files left)
    files = list((tmp_path / "cache").rglob("*"))
    assert any(f.suffix == ".json" for f in files) and not any(f.name.endswith(".tmp") for f in files)


def test_429_honours_retry_after(server, tmp_path):
    url, _ = server
    http, waits = client(tmp_path)
    assert http.get(f"{url}/ratelimited").status == 200
    assert waits == [2.0]


def test_server_error_exhausts_retries_and_names_the_url(server, tmp_path):
    url, _ = server
    http, waits = client(tmp_path, retries=2)
    with pytest.raises(RemoteError) as ei:
        http.get(f"{url}/down")
    assert ei.value.status == 500 and "/down" in str(ei.value) and len(waits) == 2
    with pytest.raises(RemoteError) as ei:
        http.get(f"{url}/bad-request")
    assert ei.value.status == 400 and "invalid input" in str(ei.value)


def test_slow_service_times_out(server, tmp_path):
    url, _ = server
    http, waits = client(tmp_path, timeout=0.2, retries=1)
    with pytest.raises(RemoteError, match="timed out after 2 attempt"):
        http.get(f"{url}/slow")
    assert len(waits) == 1


def test_rate_limit_spaces_requests_per_host(server, tmp_path):
    url, _ = server
    http, waits = client(tmp_path, min_interval=5.0, use_cache=False)
    http.get(f"{url}/worms/AphiaRecordByAphiaID/127054")
    http.get(f"{url}/worms/AphiaRecordByAphiaID/127054")
    assert len(waits) == 1 and 4.0 < waits[0] <= 5.0


def test_offline_mode_uses_only_the_cache(server, tmp_path):
    url, state = server
    online, _ = client(tmp_path)
    online.get(f"{url}/worms/AphiaRecordByAphiaID/127000")
    n = len(state.requests)
    offline, _ = client(tmp_path, offline=True)
    assert offline.get(f"{url}/worms/AphiaRecordByAphiaID/127000").json()["scientificname"] == "Chromis chromis"
    with pytest.raises(OfflineMiss):
        offline.get(f"{url}/worms/AphiaRecordByAphiaID/127054")
    assert len(state.requests) == n


# ------------------------------------------------------------------ services


def test_worms_match_names_and_records(server, tmp_path):
    url, _ = server
    http, _ = client(tmp_path)
    w = Worms(http, f"{url}/worms")
    res = w.match_names(["Oblada melanura", "Nothing here", "Chromis chromis"])
    assert [len(x) for x in res] == [1, 0, 1] and res[0][0]["valid_AphiaID"] == 1577363
    assert w.match_names(["Nothing here"]) == [[]]  # WoRMS answers 204 when nothing matches
    assert w.record(127054)["scientificname"] == "Diplodus vulgaris"
    assert w.record(424242) is None  # 204 = unknown id


def test_gbif_and_nvs(server, tmp_path):
    url, _ = server
    http, _ = client(tmp_path)
    assert Gbif(http, f"{url}/gbif").match("Navicula radiosa")["usageKey"] == 5415
    assert Gbif(http, f"{url}/gbif").match("Nothing") is None
    nvs = Nvs(http, f"{url}/nvs")
    c = nvs.concept("https://vocab.nerc.ac.uk/collection/L22/current/TOOL1583")
    assert c is not None and c.collection == "L22" and c.code == "TOOL1583" and "FlowCam" in c.label
    assert nvs.concept("http://vocab.nerc.ac.uk/collection/L05/current/180/").deprecated
    assert nvs.concept("http://vocab.nerc.ac.uk/collection/L22/current/NOPE/") is None


def test_match_labels_online_worms_then_gbif(server, tmp_path):
    url, _ = server
    http, _ = client(tmp_path)
    matches, findings = match_labels(["Oblada melanura", "Diplodus vulgari", "Navicula radiosa", "Halophila",
                                      "Xyzzy plugh", "bubbles", "Nonexistus nonexistens"], http=http,
                                     worms_url=f"{url}/worms", gbif_url=f"{url}/gbif")
    m = {x.label: x for x in matches}
    ob = m["Oblada melanura"]
    assert (ob.status, ob.authority, ob.aphia_id, ob.accepted_aphia_id, ob.accepted_name) == \
        ("matched", "WoRMS", 900000001, 1577363, "Oblada melanurus")
    assert ob.lsid == "urn:lsid:marinespecies.org:taxname:1577363" and "misspelling" in ob.note
    assert m["Diplodus vulgari"].match_type == "near_1" and "check the spelling" in m["Diplodus vulgari"].note
    nav = m["Navicula radiosa"]
    assert nav.authority == "GBIF Backbone Taxonomy" and nav.uri == "https://www.gbif.org/species/5415"
    assert m["Halophila"].status == "unmatched" and len(m["Halophila"].candidates) == 2 and m["Halophila"].needs_review
    assert m["Xyzzy plugh"].status == "unmatched" and "higher-rank" in m["Xyzzy plugh"].note
    assert m["bubbles"].status == "non-taxon"
    assert {f.place for f in findings if f.code == "taxon-unmatched"} == \
        {"label 'Halophila'", "label 'Xyzzy plugh'", "label 'Nonexistus nonexistens'"}


def test_service_down_falls_back_to_bundle(server, tmp_path):
    url, _ = server
    http, _ = client(tmp_path, retries=1)
    matches, findings = match_labels(["Chromis chromis", "Navicula radiosa"], http=http,
                                     worms_url=f"{url}/worms-down", gbif_url=f"{url}/gbif")
    assert matches[0].accepted_aphia_id == 127000 and matches[0].authority == "WoRMS (bundled subset)"
    assert matches[1].status == "unmatched"
    assert any(f.code == "vocab-service" and "worms-down" in (f.file or "") for f in findings)


def test_mapping_file_round_trip(tmp_path):
    matches, _ = match_labels(["Oblada melanura", "debris"], offline=True)
    for name in ("m.json", "m.yaml"):
        write_mapping(matches, tmp_path / name)
        back = read_mapping(tmp_path / name)
        assert [(b.label, b.status, b.accepted_aphia_id) for b in back] == \
            [("Oblada melanura", "matched", 1577363), ("debris", "non-taxon", None)]


def test_cli_vocab_match(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setenv("IMAGINE_CACHE", str(tmp_path / "c"))
    out = tmp_path / "map.json"
    r = CliRunner().invoke(main, ["vocab", "match", "Oblada melanura", "debris", "multiple objects", "--worms-url",
                                  f"{url}/worms", "--gbif-url", f"{url}/gbif", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    by = {c["label"]: c for c in doc["classes"]}
    assert by["Oblada melanura"]["accepted_name"] == "Oblada melanurus" and by["debris"]["status"] == "non-taxon"
    assert "not an organism" in by["multiple objects"]["note"]
    r = CliRunner().invoke(main, ["vocab", "match", "Nonexistus nonexistens", "--offline",
                                  "-o", str(tmp_path / "x.json")])
    assert r.exit_code == 1 and "matched no taxon" in r.output
    r = CliRunner().invoke(main, ["vocab", "match", "-o", str(tmp_path / "y.json")])
    assert r.exit_code == 2 and not (tmp_path / "y.json").exists()


def test_retry_after_as_http_date_and_capped_wait(server, tmp_path):
    url, _ = server
    http, waits = client(tmp_path)
    assert http.get(f"{url}/ratelimited-date").status == 200
    assert len(waits) == 1 and 1.0 < waits[0] <= 3.0
    http, waits = client(tmp_path, max_wait=7.0)
    assert http.get(f"{url}/ratelimited-long").status == 200 and waits == [7.0]


def test_worms_batches_of_50(server, tmp_path):
    url, state = server
    http, _ = client(tmp_path, use_cache=False)
    before = sum(1 for p in state.requests if p.startswith("/worms/AphiaRecordsByMatchNames"))
    names = [f"Nonexistus species{i}" for i in range(120)] + ["Chromis chromis"]
    res = Worms(http, f"{url}/worms").match_names(names)
    after = sum(1 for p in state.requests if p.startswith("/worms/AphiaRecordsByMatchNames"))
    assert after - before == 3 and len(res) == 121 and res[-1][0]["AphiaID"] == 127000 and res[0] == []
