"""FAIR check: the 41 RDA indicators, FAIR EVA weights and aggregation, on good, poor and empty metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagine.kernel import InputError, RemoteError
from imagine.publish.cli import main
from imagine.publish.describe import describe
from imagine.publish.fair import (
    CONSTANTS,
    INDICATORS,
    TOTAL_WEIGHT,
    ask_fair_eva,
    constant_cap,
    fair_score,
    oai_dc_rows,
    status_of,
    weighted,
    zenodo_cap,
)
from tests.test_describe import META, use_case_dataset
from tests.test_vocab_server import serve


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fair") / "good"
    res = describe(None, META / "plankton-flowcam.yaml", out,
                   dataset=use_case_dataset(["Bacillariophyceae", "Copepoda", "detritus"]))
    assert res.ok
    return out


@pytest.fixture(scope="module")
def poor(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fair") / "poor"
    res = describe(None, META / "poor.yaml", out, dataset=use_case_dataset(["fish"]))
    assert res.ok
    return out


def test_weights_and_thresholds_match_fair_eva():
    assert len(INDICATORS) == 41 and TOTAL_WEIGHT == 680
    counts = {w: sum(1 for *_, ww, _ in INDICATORS if ww == w) for w in (20, 15, 10)}
    assert counts == {20: 20, 15: 14, 10: 7}
    per_p = {p: sum(w for _, pp, w, _ in INDICATORS if pp == p) for p in "FAIR"}
    assert per_p == {"F": 140, "A": 215, "I": 155, "R": 170}
    assert [status_of(p) for p in (0, 50, 50.01, 74.9, 75, 100)] == ["fail", "fail", "indeterminate",
                                                                      "indeterminate", "pass", "pass"]
    pts = {i: (100.0 if n % 2 else 0.0) for n, (i, *_rest) in enumerate(INDICATORS)}
    manual = sum(pts[i] * w for i, _, w, _ in INDICATORS) / 680
    assert weighted(pts) == round(manual, 2)


def test_caps():
    w = {i: ww for i, _, ww, _ in INDICATORS}
    lost = sum(w[i] * (100 - p) for i, p in CONSTANTS.items())
    assert constant_cap() == round(100 - lost / 680, 2) == 92.65
    assert zenodo_cap() < constant_cap()


def test_good_description_reaches_the_cap_indicator_by_indicator(good):
    r = fair_score(good)
    by = {i.id: i for i in r.indicators}
    for i in r.indicators:
        assert i.points == i.max_points, (i.id, i.points, i.why)
    assert r.score == r.cap == zenodo_cap()
    assert by["RDA-F2-01M"].points == 40 and "title, publisher, type, rights" in by["RDA-F2-01M"].why
    assert by["RDA-I2-01M"].points == 100 and "Wikidata" in by["RDA-I2-01M"].why
    assert by["RDA-I3-01M"].points == 100 and "vliz.be" in by["RDA-I3-01M"].why
    assert by["RDA-R1.1-02M"].points == 100 and by["RDA-R1.1-03M"].points == 0
    assert by["RDA-A2-01M"].points == 50 and by["RDA-A2-01M"].status == "fail"
    assert by["RDA-A1-02M"].predicted and not by["RDA-F1-01M"].predicted
    # the aquatic profile credits NVS/WoRMS/SPDX, RDF metadata, PROV and Croissant
    assert r.aquatic_score == 100.0
    assert "taxa (WoRMS/GBIF)" in by["RDA-I2-01M"].aquatic_why and by["RDA-I1-02M"].aquatic_points == 100
    assert r.principles["F"] == round((6 * 20 * 100 + 20 * 40) / 140, 2)


def test_poor_description(poor, good):
    r = fair_score(poor)
    by = {i.id: i for i in r.indicators}
    best = fair_score(good)
    assert r.score < best.score - 10 and r.aquatic_score < best.aquatic_score - 15
    assert by["RDA-F2-01M"].points == 40
    assert by["RDA-I2-01M"].points == by["RDA-I2-01D"].points == 0 and "Wikidata" in by["RDA-I2-01M"].how
    for iid in ("RDA-I3-01M", "RDA-I3-01D", "RDA-I3-02M", "RDA-I3-02D", "RDA-I3-03M", "RDA-I3-04M"):
        assert by[iid].points == 0 and by[iid].status == "fail" and by[iid].how
    assert by["RDA-R1.1-02M"].points == 100  # CC0's Zenodo URL is an SPDX seeAlso URL
    assert by["RDA-I2-01M"].aquatic_points == 50  # SPDX licence + default EU data theme, no taxa, no instrument
    assert by["RDA-R1-01M"].aquatic_points < 60 and "instrument" in by["RDA-R1-01M"].aquatic_why
    assert by["RDA-F2-01M"].aquatic_points == 80 and "version" in by["RDA-F2-01M"].aquatic_why


def test_empty_metadata():
    r = fair_score({}, assume_doi=False)
    by = {i.id: i.points for i in r.indicators}
    assert by["RDA-F1-01M"] == by["RDA-F4-01M"] == by["RDA-F2-01M"] == 0
    assert by["RDA-A2-01M"] == 50 and by["RDA-A1.2-01D"] == 100 and by["RDA-A1-05D"] == 0
    assert by["RDA-A1-04M"] == by["RDA-A1.1-01M"] == 100  # the protocol of Zenodo's endpoint, not the record
    nonzero = {i for i, p in by.items() if p}
    assert nonzero == {"RDA-A2-01M", "RDA-A1.2-01D", "RDA-A1-04M", "RDA-A1.1-01M"}
    assert r.score == weighted(by)
    r2 = fair_score({})  # Zenodo always mints a DOI: the identifier indicators pass
    assert {i.id for i in r2.indicators if i.points == 100} >= {"RDA-F1-01M", "RDA-F1-02D", "RDA-F3-01M"}
    assert any("DOI" in a for a in r2.assumptions) and not any("DOI" in a for a in r.assumptions)


def test_oai_dc_model():
    rows = oai_dc_rows({"title": "T", "license": "cc-by-4.0", "keywords": ["a"], "access_right": "open",
                        "locations": [{"place": "OBSEA", "lat": 41.18, "lon": 1.75}]}, ["x.csv"], "10.5281/zenodo.1")
    assert ("rights", "https://creativecommons.org/licenses/by/4.0/legalcode") in rows
    assert ("rights", "info:eu-repo/semantics/openAccess") in rows and ("subject", "a") in rows
    assert ("coverage", "name=OBSEA; east=1.75; north=41.18") in rows and ("format", "text/csv") in rows


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="zenodo.json"):
        fair_score(tmp_path)
    p = tmp_path / "rec.json"
    p.write_text("[1, 2")
    with pytest.raises(InputError) as ei:
        fair_score(p)
    assert ei.value.place == "line 1"


def _fair_eva_answer(record: str, points: dict[str, float]) -> dict:
    principles = {"F": "findable", "A": "accessible", "I": "interoperable", "R": "reusable"}
    out: dict = {v: {} for v in principles.values()}
    for iid, p, w, name in INDICATORS:
        key = "rda_" + iid[4:].lower().replace("-", "_").replace(".", "_")
        out[principles[p]][key] = {"name": iid, "msg": name, "points": points[iid], "weight": w,
                                   "test_status": status_of(points[iid]),
                                   "score": {"earned": points[iid], "total": 100}}
    return {record: out, "evaluator_logs": []}


def test_fair_eva_service_answer_beside_ours(good):
    ours = fair_score(good)
    pts = {i.id: i.points for i in ours.indicators} | {"RDA-A1-02M": 80.0}
    with serve() as (url, state):
        state.fair_eva_answer = _fair_eva_answer("10554845", pts)
        theirs = ask_fair_eva(url, "10554845")
        assert theirs["score"] == weighted(pts) and theirs["indicators"]["RDA-A1.1-01M"] == 100
        assert state.fair_eva_bodies[-1] == {"id": "10554845", "repo": "oai_pmh",
                                             "api_endpoint": "https://zenodo.org/oai2d", "lang": "en"}
        r = CliRunner().invoke(main, ["fair", str(good), "--fair-eva", url, "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["fair_eva"]["differences"] == {"RDA-A1-02M": {"ours": 100.0, "fair_eva": 80.0}}
        assert doc["fair_eva"]["record"] == "10554845"  # taken from the DOI in zenodo.json
        with pytest.raises(RemoteError, match="HTTP 500"):
            ask_fair_eva(url, "broken")
        r = CliRunner().invoke(main, ["fair", str(good), "--fair-eva", url, "--record", "broken"])
        assert r.exit_code == 2 and "HTTP 500" in r.output
        state.fair_eva_answer = _fair_eva_answer("8435696", pts)
        r = CliRunner().invoke(main, ["fair", "8435696", "--fair-eva", url])
        assert r.exit_code == 0 and f"score {weighted(pts):.2f}" in r.output and "RDA-A1-02M" in r.output
    with pytest.raises(RemoteError, match="could not be reached"):
        ask_fair_eva(url, "8435696", timeout=2)


def test_cli_fair(good, poor):
    r = CliRunner().invoke(main, ["fair", str(good)])
    assert r.exit_code == 0 and "FAIR EVA-compatible score: 76.18" in r.output and "RDA-R1.3-02D" in r.output
    r = CliRunner().invoke(main, ["fair", str(poor), "--min", "70"])
    assert r.exit_code == 1 and "below --min 70" in r.output
    r = CliRunner().invoke(main, ["fair", str(poor / "nothing")])
    assert r.exit_code == 2


def test_published_record_json(good, tmp_path):
    """A record as Zenodo's /api/records/<id> returns it (legacy JSON): DOI and file list from the record."""
    md = json.loads((good / "zenodo.json").read_text())["metadata"]
    record = {"id": 10554845, "recid": "10554845", "doi": "10.5281/zenodo.10554845", "metadata": md,
              "files": [{"key": "annotations.csv", "size": 10, "checksum": "md5:0"},
                        {"key": "README.md", "size": 10, "checksum": "md5:1"}]}
    p = tmp_path / "record.json"
    p.write_text(json.dumps(record))
    r = fair_score(p)
    assert not any("DOI" in a for a in r.assumptions) and r.score == zenodo_cap()
    by = {i.id: i for i in r.indicators}
    assert "10.5281/zenodo.10554845" in by["RDA-F1-01M"].why
    record["files"] = [{"key": "README.md"}]  # no file in a format FAIR EVA's oai_pmh config knows
    p.write_text(json.dumps(record))
    by = {i.id: i for i in fair_score(p).indicators}
    assert by["RDA-A1-03D"].points == by["RDA-A1-04D"].points == by["RDA-A1.1-01D"].points == 0
    assert "annotations.csv" in by["RDA-A1-03D"].how


def test_poor_description_every_indicator(poor):
    """Each of the 41 FAIR EVA-compatible points for the minimal description, with the rule that gives it."""
    by = {i.id: i.points for i in fair_score(poor).indicators}
    expected = {i: 100.0 for i, *_ in INDICATORS}
    expected.update({
        "RDA-F2-01M": 40.0,  # title, publisher, type, rights
        "RDA-A1-05D": 0.0, "RDA-A2-01M": 50.0, "RDA-R1.2-01M": 0.0, "RDA-R1.2-02M": 0.0,  # constants
        "RDA-I1-02M": 0.0, "RDA-I1-02D": 0.0,  # no 'rdf' OAI metadata prefix on Zenodo
        "RDA-I2-01M": 0.0, "RDA-I2-01D": 0.0,  # no Wikidata/LOC/GeoNames/Getty/COAR/ORCID value
        "RDA-I3-01M": 0.0, "RDA-I3-01D": 0.0, "RDA-I3-02M": 0.0, "RDA-I3-02D": 0.0, "RDA-I3-03M": 0.0,
        "RDA-I3-04M": 0.0,  # no related identifiers
        "RDA-R1-01M": 0.0, "RDA-R1.1-03M": 0.0, "RDA-R1.3-01D": 0.0, "RDA-R1.3-02D": 0.0,  # oai_pmh limits
    })
    assert by == expected
