"""describe + validate: metadata for the two real datasets and the three use-case descriptions.

Each output folder must pass the JSON Schemas and SHACL (DCAT-AP 3.0.1 + aquatic profile), load
back into rdflib with the facts of the dataset, and pass ``mlcroissant`` when it is installed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, RDF, SKOS

from imagine.curate.formats import formats
from imagine.curate.model import Dataset
from imagine.kernel import InputError, image_size
from imagine.publish.cli import main
from imagine.publish.describe import OUTPUT_FILES, check_description, describe, load_description, orcid_ok
from imagine.publish.shacl import validate_dir

FIX = Path(__file__).parent / "fixtures"
META = FIX / "publish"
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DQV = Namespace("http://www.w3.org/ns/dqv#")
AQ = Namespace("https://w3id.org/imagine/profile/aquatic#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
try:
    import mlcroissant  # noqa: F401

    HAVE_MLC = True
except ImportError:  # pragma: no cover
    HAVE_MLC = False


def fishcam_dataset() -> Dataset:
    """The FishCam crops as a whole-image classification dataset (one folder per species)."""
    root = FIX / "fishcam" / "data"
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.png"))
    sizes = [image_size(root / f) for f in files]
    classes = sorted({f.split("/")[0] for f in files})
    cid = {c: i for i, c in enumerate(classes)}
    dates = {}
    with open(root / "test-sample.csv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            dates[row["image"]] = row["date"]
    return Dataset.from_columns(
        images={"id": list(range(len(files))), "file_name": files, "width": [w for w, _ in sizes],
                "height": [h for _, h in sizes], "split": ["test" if f in dates else "train" for f in files],
                "datetime": [dates.get(f) for f in files]},
        annotations={"id": list(range(len(files))), "image_id": list(range(len(files))),
                     "category_id": [cid[f.split("/")[0]] for f in files], "kind": ["label"] * len(files),
                     "bbox_x": [0.0] * len(files), "bbox_y": [0.0] * len(files),
                     "bbox_w": [float(w) for w, _ in sizes], "bbox_h": [float(h) for _, h in sizes]},
        categories={"id": list(range(len(classes))), "name": classes},
        info={"root": str(root), "source_format": "imagefolder"})


def use_case_dataset(classes: list[str], per_class: int = 3) -> Dataset:
    """A small detection dataset with the classes of a use case (no image files: metadata only)."""
    n = len(classes) * per_class
    return Dataset.from_columns(
        images={"id": list(range(n)), "file_name": [f"img_{i:04d}.jpg" for i in range(n)], "width": [1280] * n,
                "height": [720] * n, "split": [["train", "train", "val"][i % 3] for i in range(n)]},
        annotations={"id": list(range(n)), "image_id": list(range(n)),
                     "category_id": [i // per_class for i in range(n)], "kind": ["box"] * n,
                     "bbox_x": [10.0] * n, "bbox_y": [20.0] * n, "bbox_w": [30.0] * n, "bbox_h": [40.0] * n},
        categories={"id": list(range(len(classes))), "name": classes}, info={"source_format": "coco"})


USE_CASES = {
    "plankton-flowcam.yaml": ["Bacillariophyceae", "Copepoda", "Dinoflagellata", "detritus", "bubbles"],
    "fish-observatory.yaml": ["Diplodus vulgaris", "Oblada melanura", "Chromis chromis", "Diver", "multiple objects"],
    "litter-drone.yaml": ["plastic bottle", "plastic bag", "net", "rope", "other"],
}


def check_outputs(out: Path, *, images: int, annotations: int) -> Graph:
    """Validation passes; the graph loads back with the dataset's counts and checksums of every file."""
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    res = validate_dir(out, croissant=HAVE_MLC)
    assert res.ok, [f.render() for f in res.findings if f.severity == "error"]
    if HAVE_MLC:
        assert res.checks["mlcroissant"] != "not installed"
    g = Graph().parse(out / "dcat.ttl", format="turtle")
    g2 = Graph().parse(out / "dcat.jsonld", format="json-ld")
    assert len(g) == len(g2) > 50
    ds = next(g.subjects(RDF.type, DCAT.Dataset))
    values = {}
    for m in g.objects(ds, DQV.hasQualityMeasurement):
        values[str(g.value(m, DQV.isMeasurementOf)).rsplit("-", 1)[-1]] = g.value(m, DQV.value).toPython()
    assert values["images"] == images and values["annotations"] == annotations
    dists = list(g.objects(ds, DCAT.distribution))
    names = {str(g.value(d, DCTERMS.title)) for d in dists}
    assert names >= {"annotations.csv", "croissant.json", "zenodo.json", "README.md", "schema-org.jsonld"}
    for d in dists:
        name = str(g.value(d, DCTERMS.title))
        if (out / name).is_file():
            import hashlib

            ck = g.value(d, SPDX.checksum)
            assert str(g.value(ck, SPDX.checksumValue)) == hashlib.sha256((out / name).read_bytes()).hexdigest()
            assert g.value(d, DCAT.byteSize).toPython() == (out / name).stat().st_size
    zen = json.loads((out / "zenodo.json").read_text())["metadata"]
    assert zen["upload_type"] == "dataset" and zen["creators"] and zen["publication_date"]
    with open(out / "annotations.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == annotations
    return g


def test_describe_aquarium_real_dataset(tmp_path):
    out = tmp_path / "meta"
    res = describe(FIX / "aquarium", META / "aquarium.yaml", out, fmt="yolo")
    assert res.ok
    g = check_outputs(out, images=638, annotations=res.record["facts"]["annotations"])
    facts = res.record["facts"]
    assert facts["splits"] == {"train": 448, "val": 127, "test": 63}
    assert [c["name"] for c in facts["classes"]] == ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish",
                                                     "stingray"]
    assert facts["content_hash"].startswith("sha256:") and facts["image_bytes"] > 10_000_000
    ds = next(g.subjects(RDF.type, DCAT.Dataset))
    assert (ds, DCTERMS.license, URIRef("https://spdx.org/licenses/CC-BY-4.0")) in g
    # the curator mapped "fish" to Vertebrata; the other common names stay unmapped and are reported
    assert (ds, DCTERMS.subject, URIRef("urn:lsid:marinespecies.org:taxname:146419")) in g
    assert {f.place for f in res.findings if f.code == "taxon-unmatched"} == \
        {f"label '{x}'" for x in ("jellyfish", "penguin", "puffin", "shark", "starfish", "stingray")}
    assert (ds, AQ.platform, URIRef("http://vocab.nerc.ac.uk/collection/L06/current/14/")) in g
    card = (out / "README.md").read_text()
    assert "| fish | [*Vertebrata*]" in card and "| images | 638 |" in card


def test_describe_fishcam_real_dataset(tmp_path):
    out = tmp_path / "meta"
    if "imagefolder" in formats():
        res = describe(FIX / "fishcam" / "data", META / "fishcam.yaml", out, fmt="imagefolder")
    else:  # pragma: no cover - before the imagefolder reader existed
        res = describe(None, META / "fishcam.yaml", out, dataset=fishcam_dataset())
    assert res.ok
    g = check_outputs(out, images=1053, annotations=1053)
    facts = res.record["facts"]
    assert sum(c["annotations"] for c in facts["classes"]) == 1053 and len(facts["classes"]) == 7
    assert facts["annotation_kinds"] == {"label": 1053}
    assert facts["image_formats"]["png"]["count"] == 1053
    assert facts["time_span"]["start"].startswith("2015")
    ds_node = next(g.subjects(RDF.type, DCAT.Dataset))
    assert (ds_node, DCTERMS.license, URIRef("https://spdx.org/licenses/MIT")) in g
    # curator-named taxa without an AphiaID are kept as names, not invented ids
    taxa = {t["label"]: t for t in res.record["taxa"]}
    assert taxa["burbot"]["accepted_name"] == "Lota lota" and "accepted_aphia_id" not in taxa["burbot"]
    assert list(g.objects(ds_node, DCTERMS.temporal))


@pytest.mark.parametrize("meta", sorted(USE_CASES))
def test_describe_use_cases(tmp_path, meta):
    out = tmp_path / "meta"
    classes = USE_CASES[meta]
    res = describe(None, META / meta, out, dataset=use_case_dataset(classes))
    assert res.ok, [f.render() for f in res.findings]
    g = check_outputs(out, images=len(classes) * 3, annotations=len(classes) * 3)
    ds = next(g.subjects(RDF.type, DCAT.Dataset))
    taxa = {t["label"]: t for t in res.record["taxa"]}
    desc = load_description(META / meta)
    if meta.startswith("fish"):
        assert taxa["Oblada melanura"]["accepted_name"] == "Oblada melanurus"
        assert (ds, DCTERMS.subject, URIRef("urn:lsid:marinespecies.org:taxname:1577363")) in g
        assert taxa["Diver"]["status"] == taxa["multiple objects"]["status"] == "non-taxon"
        assert (ds, AQ.nonTaxonClass, Literal("multiple objects")) in g
        assert (ds, DCTERMS.spatial, URIRef("https://w3id.org/earthsemantics/OSO#OBSEA")) in g
    if meta.startswith("plankton"):
        assert (ds, AQ.instrument, URIRef("http://vocab.nerc.ac.uk/collection/L22/current/TOOL1583/")) in g
        assert g.value(URIRef("http://vocab.nerc.ac.uk/collection/L22/current/TOOL1583/"), SKOS.notation) == \
            Literal("SDN:L22::TOOL1583")
        assert taxa["detritus"]["status"] == "non-taxon"
        zen = json.loads((out / "zenodo.json").read_text())["metadata"]
        assert zen["grants"] == [{"id": "10.13039/501100000780::101058625"}] and zen["license"] == "cc-by-4.0"
        assert "urn:lsid:marinespecies.org:taxname:148899" in zen["custom"]["dwc:scientificNameID"]
        assert zen["doi"] == desc["doi"] and zen["communities"] == [{"identifier": "imagine-project"}]
    if meta.startswith("litter"):
        assert all(t["status"] == "non-taxon" for t in res.record["taxa"])
        assert (ds, AQ.platform, URIRef("http://vocab.nerc.ac.uk/collection/L06/current/6D/")) in g
    cr = json.loads((out / "croissant.json").read_text())
    assert {rs["@id"] for rs in cr["recordSet"]} >= {"classes", "annotations"}
    bbox = [f for rs in cr["recordSet"] for f in rs["field"] if f["@id"] == "annotations/bbox"]
    assert bbox and bbox[0]["dataType"] == "cr:BoundingBox"


def test_bad_description_every_finding_nothing_written(tmp_path):
    out = tmp_path / "meta"
    res = describe(None, META / "bad.yaml", out, dataset=use_case_dataset(["a"]))
    assert not res.ok and not out.exists()
    by = {f.code: f for f in res.findings}
    assert by["description-schema"].place == "/" and "'description' is a required property" in \
        by["description-schema"].message
    assert by["licence-not-spdx"].place.startswith("/license (line 5)")
    assert "CC-BY-4.0" in by["licence-not-spdx"].message
    assert by["orcid-checksum"].place == "/creators/0/orcid"
    assert by["vocab-deprecated"].place == "/instrument"
    assert all(f.file == str(META / "bad.yaml") for f in res.findings)


def test_orcid_checksum():
    assert orcid_ok("0000-0002-1825-0097") and orcid_ok("https://orcid.org/0000-0002-1694-233X")
    assert not orcid_ok("0000-0002-1825-0098") and not orcid_ok("1234")


def test_unparseable_description_names_line(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("title: x\ncreators: [a\nlicense: MIT\n")
    with pytest.raises(InputError) as ei:
        load_description(p)
    assert ei.value.file == str(p) and ei.value.place.startswith("line ")
    assert check_description({"title": "ok title", "description": "a dataset", "creators": [{"name": "n"}],
                              "license": "CC-BY-4.0", "themes": ["OCEANS"]})[0].place == "/themes/0"


def test_cli_describe_validate(tmp_path):
    out = tmp_path / "meta"
    runner = CliRunner()
    r = runner.invoke(main, ["describe", str(FIX / "aquarium"), "--from", "yolo", "--meta",
                             str(META / "aquarium.yaml"), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and set(doc["files"]) == set(OUTPUT_FILES)
    r = runner.invoke(main, ["validate", str(out), "--json", "--no-croissant"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"]
    # break the DCAT: a missing title is a SHACL violation naming the file and the focus node
    ttl = (out / "dcat.ttl").read_text()
    g = Graph().parse(data=ttl, format="turtle")
    g.remove((None, DCTERMS.title, None))
    (out / "dcat.ttl").write_text(g.serialize(format="turtle"))
    r = runner.invoke(main, ["validate", str(out), "--no-croissant"])
    assert r.exit_code == 1 and "dct:title (mandatory)" in r.output and "dcat.ttl" in r.output
    r = runner.invoke(main, ["describe", str(FIX / "aquarium"), "--from", "yolo", "--meta", str(META / "bad.yaml"),
                             "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "orcid-checksum" in r.output and not (tmp_path / "x").exists()
    r = runner.invoke(main, ["describe", str(FIX / "aquarium"), "--meta", str(tmp_path / "none.yaml"),
                             "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "description file not found" in r.output
    r = runner.invoke(main, ["validate", str(tmp_path / "nowhere")])
    assert r.exit_code == 2


def test_outputs_are_readable_files(tmp_path):
    out = tmp_path / "meta"
    assert describe(None, META / "litter-drone.yaml", out, dataset=use_case_dataset(["plastic bottle"])).ok
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == 0o755 & ~mask
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o644 & ~mask}


def test_describe_online_against_local_services(tmp_path):
    from tests.test_vocab_server import serve

    meta = tmp_path / "d.yaml"
    meta.write_text((META / "fish-observatory.yaml").read_text().replace(
        "instrument_category: L05:311", "instrument: http://vocab.nerc.ac.uk/collection/L22/current/TOOL9999/"))
    with serve() as (url, state):
        from imagine.vocab import HttpClient

        http = HttpClient(cache_dir=tmp_path / "cache", min_interval=0.0)
        res = describe(None, meta, tmp_path / "out", dataset=use_case_dataset(["Oblada melanura", "Navicula radiosa",
                                                                               "Diver"]), online=True, http=http,
                       worms_url=f"{url}/worms", gbif_url=f"{url}/gbif", nvs_url=f"{url}/nvs")
        assert res.ok, [f.render() for f in res.findings]
        assert any(p.startswith("/nvs/collection/L22/current/TOOL9999/") for p in state.requests)
        taxa = {t["label"]: t for t in res.record["taxa"]}
        assert taxa["Oblada melanura"]["authority"] == "WoRMS" and taxa["Oblada melanura"]["accepted_aphia_id"] == \
            1577363
        assert taxa["Navicula radiosa"]["uri"] == "https://www.gbif.org/species/5415"
        assert res.record["instrument"]["label"] == "Test camera"  # English label from NVS, not the URI
        g = Graph().parse(tmp_path / "out" / "dcat.ttl")
        assert (URIRef("http://vocab.nerc.ac.uk/collection/L22/current/TOOL9999/"), SKOS.prefLabel,
                Literal("Test camera", lang="en")) in g
        # an NVS URI that NVS does not know is an error naming the place
        meta.write_text(meta.read_text().replace("TOOL9999", "TOOL0000"))
        res = describe(None, meta, tmp_path / "out2", dataset=use_case_dataset(["Diver"]), online=True, http=http,
                       nvs_url=f"{url}/nvs")
        assert not res.ok and [f.place for f in res.findings if f.code == "vocab-unknown"] == ["/instrument"]
        assert not (tmp_path / "out2").exists()


def test_validate_reports_each_broken_file(tmp_path):
    out = tmp_path / "meta"
    assert describe(None, META / "plankton-flowcam.yaml", out, dataset=use_case_dataset(["Copepoda"])).ok
    zen = json.loads((out / "zenodo.json").read_text())
    zen["metadata"]["related_identifiers"][0]["relation"] = "isTrainedBy"
    del zen["metadata"]["creators"]
    (out / "zenodo.json").write_text(json.dumps(zen))
    # the aquatic profile wants an NVS L22 instrument
    ttl = (out / "dcat.ttl").read_text().replace("collection/L22/current/TOOL1583/", "collection/L05/current/LAB27/")
    (out / "dcat.ttl").write_text(ttl)
    Graph().parse(data=ttl, format="turtle").serialize(out / "dcat.jsonld", format="json-ld")
    cr = json.loads((out / "croissant.json").read_text())
    del cr["distribution"][0]["sha256"]
    (out / "croissant.json").write_text(json.dumps(cr))
    res = validate_dir(out, croissant=HAVE_MLC)
    errors = {(Path(f.file).name, f.place): f.message for f in res.findings if f.severity == "error"}
    assert ("zenodo.json", "/metadata") in errors and "'creators' is a required property" in \
        errors[("zenodo.json", "/metadata")]
    assert ("zenodo.json", "/metadata/related_identifiers/0/relation") in errors
    assert any(name == "dcat.ttl" and "must be an NVS L22 concept" in msg for (name, _), msg in errors.items())
    if HAVE_MLC:
        assert any(name == "croissant.json" and "sha256" in msg for (name, _), msg in errors.items())


def test_audit_cards_reports_and_manifest_are_merged(tmp_path):
    MLD = Namespace("http://data.europa.eu/it6/")
    PROV = Namespace("http://www.w3.org/ns/prov#")
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"summary": {"label_issues": 12, "duplicates": {"exact": 3, "near": 5},
                                             "leakage": 0, "ok": True}}))
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"title": "YOLOv8n baseline", "identifier": "10.5281/zenodo.15390169",
                                "task": "object detection", "metrics": {"mAP50": 0.61, "mAP50-95": 0.38}}))
    report = tmp_path / "conv.json"
    report.write_text(json.dumps({"source_format": "cvat", "target_format": "yolo", "lossless": False,
                                  "losses": [{"code": "rotation-dropped", "count": 4}]}))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "splits": {}, "hash": "sha256:00"}))
    out = tmp_path / "meta"
    ds = use_case_dataset(["Diplodus vulgaris", "Diver"])
    res = describe(None, META / "fish-observatory.yaml", out, dataset=ds, audit=audit, cards=[card],
                   reports=[report], manifest=manifest)
    assert res.ok
    g = Graph().parse(out / "dcat.ttl")
    ds_node = next(g.subjects(RDF.type, DCAT.Dataset))
    model = URIRef("https://doi.org/10.5281/zenodo.15390169")
    assert (model, MLD.trainedOn, ds_node) in g and (ds_node, DCTERMS.isReferencedBy, model) in g
    labels = {str(g.value(a, URIRef("http://www.w3.org/2000/01/rdf-schema#label")))
              for a in g.objects(ds_node, PROV.wasGeneratedBy)}
    assert {"image acquisition", "conversion cvat -> yolo"} <= labels and any("audit" in x for x in labels)
    measures = {str(g.value(m, DQV.isMeasurementOf)).split("metric-", 1)[1]: g.value(m, DQV.value).toPython()
                for m in g.objects(ds_node, DQV.hasQualityMeasurement)}
    assert measures["audit-label_issues"] == 12 and measures["audit-duplicates.near"] == 5
    assert "audit-ok" not in measures  # booleans are not measurements
    readme = (out / "README.md").read_text()
    assert "YOLOv8n baseline: mAP50 0.61" in readme and "conversion cvat -> yolo" in readme
    zen = json.loads((out / "zenodo.json").read_text())["metadata"]
    assert {"identifier": "10.5281/zenodo.15390169", "relation": "isSourceOf", "resource_type": "software"} in \
        zen["related_identifiers"]
    bad = tmp_path / "bad-audit.json"
    bad.write_text("{oops")
    with pytest.raises(InputError) as ei:
        describe(None, META / "fish-observatory.yaml", tmp_path / "o2", dataset=ds, audit=bad)
    assert ei.value.file == str(bad) and ei.value.place == "line 1" and not (tmp_path / "o2").exists()


def test_reviewed_mapping_file_is_used(tmp_path):
    from imagine.vocab import match_labels, write_mapping

    matches, _ = match_labels(["Oblada melanura", "Chromis chromis", "Diver"], offline=True)
    mapping = tmp_path / "taxa.yaml"
    write_mapping(matches, mapping)
    import yaml

    doc = yaml.safe_load(mapping.read_text())
    doc["classes"][1].update({"accepted_name": "Chromis chromis (reviewed)", "needs_review": False})
    mapping.write_text(yaml.safe_dump(doc))
    out = tmp_path / "meta"
    r = CliRunner().invoke(main, ["describe", str(FIX / "aquarium"), "--from", "yolo", "--meta",
                                  str(META / "aquarium.yaml"), "--out", str(out), "--taxa", str(mapping), "--json"])
    assert r.exit_code == 0, r.output
    taxa = {t["label"]: t for t in json.loads(r.stdout)["taxa"]}
    # aquarium's labels are not in this mapping: they are reported as such, "fish" keeps the curator's override
    assert taxa["jellyfish"]["note"] == "not in the mapping file" and taxa["fish"]["accepted_aphia_id"] == 146419
    res = describe(None, META / "fish-observatory.yaml", tmp_path / "m2", mapping=mapping,
                   dataset=use_case_dataset(["Oblada melanura", "Chromis chromis", "Diver"]))
    taxa = {t["label"]: t for t in res.record["taxa"]}
    assert taxa["Chromis chromis"]["accepted_name"] == "Chromis chromis (reviewed)"
    assert taxa["Oblada melanura"]["accepted_aphia_id"] == 1577363 and taxa["Diver"]["status"] == "non-taxon"


def test_eu_vocabulary_shapes_offline(tmp_path):
    from imagine.publish.shacl import shacl_findings

    out = tmp_path / "meta"
    assert describe(None, META / "litter-drone.yaml", out, dataset=use_case_dataset(["net"])).ok
    g = Graph().parse(out / "dcat.ttl")
    ds = next(g.subjects(RDF.type, DCAT.Dataset))
    assert not [f for f in shacl_findings(g) if "EU" in f.message]
    g.remove((ds, DCAT.theme, None))
    g.add((ds, DCAT.theme, URIRef("http://vocab.nerc.ac.uk/collection/P02/current/BLIT/")))
    g.set((ds, DCTERMS.accessRights, URIRef("https://example.org/open")))
    found = {(f.severity, f.message) for f in shacl_findings(g, file="x.ttl")}
    assert ("warning", "at least one dcat:theme should come from the EU data-theme table") in found
    assert ("error", "dct:accessRights must come from the EU access-right table") in found
