"""Metadata writers: DCAT-AP 3 with the aquatic profile (Turtle, JSON-LD), schema.org, Croissant,
Zenodo deposit metadata (DataCite-shaped) and the human dataset card, all from one merged record.

The aquatic profile puts taxa in ``dct:subject`` (WoRMS LSIDs typed ``skos:Concept``), the
instrument and platform in a ``prov:Activity`` that generated the images (NVS L22/L05/L06
concepts), NVS P02 parameters and EU data themes in ``dcat:theme``, sites, sea areas (C19) and a
bounding box in ``dct:spatial``, curation steps as PROV activities, audit numbers and counts as DQV
measurements, and baselines as MLDCAT-AP models ``trainedOn`` the dataset.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from imagine.kernel import atomic_write
from imagine.vocab import bundle

__all__ = ["build_dcat", "build_schema_org", "build_croissant", "build_zenodo", "build_readme", "write_outputs",
           "dataset_iri", "NS", "PROFILE_IRI", "CROISSANT_CONTEXT"]

PROFILE_IRI = "https://w3id.org/imagine/profile/aquatic-dcat/0.1"
# Hosts of the controlled vocabularies FAIR EVA's core recognises (I1/I2 indicators).
FAIR_EVA_CV_HOSTS = ("wikidata.org", "id.loc.gov", "geonames.org", "vocab.getty.edu", "purl.org/coar", "orcid.org")
DCATAP_IRI = "http://data.europa.eu/r5r/"
NS = {
    "dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/", "foaf": "http://xmlns.com/foaf/0.1/",
    "prov": "http://www.w3.org/ns/prov#", "skos": "http://www.w3.org/2004/02/skos/core#",
    "vcard": "http://www.w3.org/2006/vcard/ns#", "spdx": "http://spdx.org/rdf/terms#",
    "dqv": "http://www.w3.org/ns/dqv#", "adms": "http://www.w3.org/ns/adms#", "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#", "dcatap": "http://data.europa.eu/r5r/",
    "mldcat": "http://data.europa.eu/it6/", "dwc": "http://rs.tdwg.org/dwc/terms/",
    "aq": "https://w3id.org/imagine/profile/aquatic#", "xsd": "http://www.w3.org/2001/XMLSchema#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "sdo": "https://schema.org/",
}

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform", "samplingRate": "cr:samplingRate",
    "equivalentProperty": "cr:equivalentProperty",
}


def _desc(rec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = rec["description"]
    return out


def _orcid_iri(o: str | None) -> str | None:
    if not o:
        return None
    return o if o.startswith("https://") else f"https://orcid.org/{o}"


def _doi_url(doi: str) -> str:
    return f"https://doi.org/{doi}"


def dataset_iri(rec: dict[str, Any]) -> str:
    """The dataset's IRI: its DOI URL, else its landing page, else a URN from the content hash."""
    d = _desc(rec)
    if d.get("doi"):
        return _doi_url(d["doi"])
    if d.get("landing_page"):
        return str(d["landing_page"])
    h = (rec["facts"].get("content_hash") or "").removeprefix("sha256:") or \
        re.sub(r"[^a-z0-9]+", "-", d.get("title", "dataset").lower()).strip("-")
    return f"urn:imagine:dataset:{h[:32]}"


def _access_url(rec: dict[str, Any]) -> str:
    d = _desc(rec)
    return str(d.get("download_url") or d.get("landing_page") or (d.get("doi") and _doi_url(d["doi"]))
               or dataset_iri(rec))


def _pub_date(rec: dict[str, Any]) -> str:
    return str(_desc(rec).get("publication_date") or rec["generated"][:10])


def _wkt_bbox(b: list[float]) -> str:
    w, s, e, n = b
    return f"POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))"


def _taxa_matched(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in rec["taxa"] if t.get("uri")]


# ------------------------------------------------------------------------------------------
# DCAT-AP


def build_dcat(rec: dict[str, Any], files: dict[str, dict[str, Any]] | None = None) -> Any:
    """The DCAT-AP 3 graph (aquatic profile) of the record; ``files`` become distributions."""
    from rdflib import BNode, Graph, Literal, Namespace, URIRef
    from rdflib.namespace import RDF, RDFS, XSD

    g = Graph()
    ns = {k: Namespace(v) for k, v in NS.items()}
    for k, v in ns.items():
        g.bind(k, v)
    DCAT, DCT, FOAF, PROV, SKOS = ns["dcat"], ns["dct"], ns["foaf"], ns["prov"], ns["skos"]
    VCARD, SPDX, DQV, ADMS, GSP = ns["vcard"], ns["spdx"], ns["dqv"], ns["adms"], ns["gsp"]
    MLD, DWC, AQ, LOCN = ns["mldcat"], ns["dwc"], ns["aq"], ns["locn"]
    d = _desc(rec)
    facts = rec["facts"]
    ds = URIRef(dataset_iri(rec))
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCT["title"], Literal(d["title"], lang="en")))
    g.add((ds, DCT.description, Literal(d["description"].strip(), lang="en")))
    g.add((ds, DCT.conformsTo, URIRef(PROFILE_IRI)))
    g.add((URIRef(PROFILE_IRI), RDF.type, DCT.Standard))
    g.add((URIRef(PROFILE_IRI), RDFS.label, Literal("imagine aquatic DCAT-AP profile 0.1")))
    if d.get("doi"):
        g.add((ds, DCT.identifier, Literal(_doi_url(d["doi"]))))
        ident = BNode()
        g.add((ds, ADMS.identifier, ident))
        g.add((ident, RDF.type, ADMS.Identifier))
        g.add((ident, SKOS.notation, Literal(d["doi"], datatype=XSD.string)))
        g.add((ident, DCT.creator, Literal("DataCite")))
    if d.get("landing_page"):
        lp = URIRef(d["landing_page"])
        g.add((ds, DCAT.landingPage, lp))
        g.add((lp, RDF.type, FOAF.Document))
    if d.get("version"):
        g.add((ds, DCAT.version, Literal(str(d["version"]))))
    g.add((ds, DCT.issued, Literal(_pub_date(rec), datatype=XSD.date)))
    g.add((ds, DCT.modified, Literal(rec["generated"][:10], datatype=XSD.date)))
    lang_code = {"en": "ENG", "eng": "ENG", "fr": "FRA", "es": "SPA", "de": "DEU"}.get(d.get("language", "en"), "ENG")
    lang = bundle.resolve(f"EU-LANG:{lang_code}")
    if lang is not None:
        g.add((ds, DCT.language, URIRef(lang.uri)))
        g.add((URIRef(lang.uri), RDF.type, DCT.LinguisticSystem))
    acc = {"open": "PUBLIC", "embargoed": "NON_PUBLIC", "restricted": "RESTRICTED", "closed": "NON_PUBLIC"}
    access = bundle.resolve(f"EU-ACCESS:{acc[d.get('access_right', 'open')]}")
    assert access is not None
    g.add((ds, DCT.accessRights, URIRef(access.uri)))
    g.add((URIRef(access.uri), RDF.type, DCT.RightsStatement))
    freq = bundle.resolve("EU-FREQ:IRREG")
    assert freq is not None
    g.add((ds, DCT.accrualPeriodicity, URIRef(freq.uri)))
    g.add((URIRef(freq.uri), RDF.type, DCT.Frequency))
    for kw in d.get("keywords") or []:
        g.add((ds, DCAT.keyword, Literal(kw, lang="en")))

    def concept(uri: str, label: str, scheme: str | None = None) -> URIRef:
        c = URIRef(uri)
        g.add((c, RDF.type, SKOS.Concept))
        if label:
            g.add((c, SKOS.prefLabel, Literal(label, lang="en")))
        if scheme:
            g.add((c, SKOS.inScheme, URIRef(scheme)))
        return c

    themes = rec["themes"] or [{"uri": bundle.EU_BASE + "data-theme/ENVI", "label": "Environment"}]
    for t in themes:
        g.add((ds, DCAT.theme, concept(t["uri"], t["label"], bundle.EU_BASE + "data-theme")))
    for p in rec["parameters"]:
        scheme = p["uri"].rsplit("/current/", 1)[0] + "/current/" if "/current/" in p["uri"] else None
        g.add((ds, DCAT.theme, concept(p["uri"], p["label"], scheme)))
    for t in _taxa_matched(rec):
        c = concept(t["uri"], t.get("accepted_name") or t.get("scientific_name") or t["label"],
                    "https://www.marinespecies.org" if t.get("lsid") else "https://www.gbif.org/species")
        g.add((ds, DCT.subject, c))
        g.add((c, DWC.scientificName, Literal(t.get("accepted_name") or t.get("scientific_name") or t["label"])))
        if t.get("lsid"):
            g.add((c, DWC.scientificNameID, Literal(t["lsid"])))
        if t.get("url"):
            g.add((c, RDFS.seeAlso, URIRef(t["url"])))
        g.add((c, SKOS.altLabel, Literal(t["label"])))
        if t.get("rank"):
            g.add((c, DWC.taxonRank, Literal(t["rank"])))
    for t in rec["taxa"]:
        if t["status"] == "non-taxon":
            g.add((ds, AQ.nonTaxonClass, Literal(t["label"])))
    # licence
    lic = rec["licence"]
    if lic is not None:
        lic_node = URIRef(lic.uri)
        g.add((ds, DCT.license, lic_node))
        g.add((lic_node, RDF.type, DCT.LicenseDocument))
        g.add((lic_node, RDFS.label, Literal(lic.name)))
        if lic.eu_uri:
            g.add((lic_node, SKOS.exactMatch, URIRef(lic.eu_uri)))
    # agents
    def agent(p: dict[str, Any], kind: Any) -> Any:
        iri = _orcid_iri(p.get("orcid")) or p.get("ror") or p.get("uri")
        node = URIRef(iri) if iri else BNode()
        g.add((node, RDF.type, FOAF.Agent))
        g.add((node, RDF.type, kind))
        g.add((node, FOAF.name, Literal(p["name"])))
        if p.get("affiliation"):
            org = URIRef(p["ror"]) if p.get("ror") else BNode()
            g.add((org, RDF.type, FOAF.Organization))
            g.add((org, FOAF.name, Literal(p["affiliation"])))
            g.add((node, ns["sdo"].affiliation, org))
        if p.get("edmo"):
            g.add((node, RDFS.seeAlso, URIRef(p["edmo"])))
        return node
    for p in d.get("creators") or []:
        g.add((ds, DCT.creator, agent(p, FOAF.Person)))
    pub = d.get("publisher") or {"name": "Zenodo", "uri": "https://zenodo.org"}
    g.add((ds, DCT.publisher, agent({"name": pub["name"], "ror": pub.get("ror"), "uri": pub.get("uri"),
                                     "edmo": pub.get("edmo")}, FOAF.Organization)))
    contact = d.get("contact") or (d.get("creators") or [{}])[0]
    if contact.get("name"):
        cp = BNode()
        g.add((ds, DCAT.contactPoint, cp))
        g.add((cp, RDF.type, VCARD.Kind))
        g.add((cp, VCARD.fn, Literal(contact["name"])))
        if contact.get("email"):
            g.add((cp, VCARD.hasEmail, URIRef(f"mailto:{contact['email']}")))
    # acquisition: instrument and platform
    if rec["instrument"] or rec["platform"] or rec["instrument_category"]:
        act = URIRef(dataset_iri(rec) + "#acquisition") if not dataset_iri(rec).startswith("urn:") else BNode()
        g.add((ds, ns["prov"].wasGeneratedBy, act))
        g.add((act, RDF.type, PROV.Activity))
        g.add((act, RDFS.label, Literal("image acquisition")))
        for key, prop in (("instrument", AQ.instrument), ("instrument_category", AQ.instrumentType),
                          ("platform", AQ.platform)):
            r = rec[key]
            if r:
                c = concept(r["uri"], r["label"])
                if r.get("urn"):
                    g.add((c, SKOS.notation, Literal(r["urn"])))
                if r.get("alt_label"):
                    g.add((c, SKOS.altLabel, Literal(r["alt_label"], lang="en")))
                g.add((act, PROV.used, c))
                g.add((ds, prop, c))
        span = rec["time_span"] or {}
        if span.get("start"):
            g.add((act, PROV.startedAtTime, Literal(f"{_full_date(span['start'])}T00:00:00Z", datatype=XSD.dateTime)))
        if span.get("end"):
            g.add((act, PROV.endedAtTime, Literal(f"{_full_date(span['end'], end=True)}T23:59:59Z",
                                                  datatype=XSD.dateTime)))
    # spatial
    loc: Any
    for a in rec["sea_areas"]:
        loc = URIRef(a["uri"])
        g.add((ds, DCT.spatial, loc))
        g.add((loc, RDF.type, DCT.Location))
        g.add((loc, SKOS.prefLabel, Literal(a["label"], lang="en")))
    for s in d.get("sites") or []:
        loc = URIRef(s["uri"]) if s.get("uri") else BNode()
        g.add((ds, DCT.spatial, loc))
        g.add((loc, RDF.type, DCT.Location))
        g.add((loc, SKOS.prefLabel, Literal(s["name"], lang="en")))
        if "latitude" in s and "longitude" in s:
            g.add((loc, DCAT.centroid, Literal(f"POINT({s['longitude']} {s['latitude']})", datatype=GSP.wktLiteral)))
        if "depth_m" in s:
            g.add((loc, DWC.maximumDepthInMeters, Literal(float(s["depth_m"]))))
    if rec["bbox"]:
        loc = BNode()
        g.add((ds, DCT.spatial, loc))
        g.add((loc, RDF.type, DCT.Location))
        g.add((loc, DCAT.bbox, Literal(_wkt_bbox(rec["bbox"]), datatype=GSP.wktLiteral)))
        g.add((loc, LOCN.geometry, Literal(_wkt_bbox(rec["bbox"]), datatype=GSP.wktLiteral)))
    span = rec["time_span"] or {}
    if span.get("start") or span.get("end"):
        pt = BNode()
        g.add((ds, DCT.temporal, pt))
        g.add((pt, RDF.type, DCT.PeriodOfTime))
        if span.get("start"):
            g.add((pt, DCAT.startDate, Literal(_full_date(span["start"]), datatype=XSD.date)))
        if span.get("end"):
            g.add((pt, DCAT.endDate, Literal(_full_date(span["end"], end=True), datatype=XSD.date)))
    # related publications, models, funding
    for r in d.get("related") or []:
        target = URIRef(_pid_url(r["identifier"]))
        prop = {"isCitedBy": DCT.isReferencedBy, "isReferencedBy": DCT.isReferencedBy, "isDocumentedBy":
                DCT.isReferencedBy, "isDerivedFrom": DCT.source, "isPartOf": DCT.isPartOf, "hasPart": DCT.hasPart,
                "isVersionOf": DCT.isVersionOf}.get(r["relation"], DCT.relation)
        g.add((ds, prop, target))
    for c in rec["cards"] + [{"identifier": m["identifier"], "title": m.get("title"), "task": m.get("task")}
                             for m in d.get("models") or []]:
        ident = c.get("identifier") or c.get("model_uri") or c.get("weights_doi")
        model = URIRef(_pid_url(ident)) if ident else BNode()
        g.add((model, RDF.type, MLD.MachineLearningModel))
        g.add((model, MLD.trainedOn, ds))
        title = c.get("title") or c.get("model") or c.get("name")
        if title:
            g.add((model, DCT["title"], Literal(str(title))))
        if c.get("task"):
            g.add((model, MLD.hasTaskType, Literal(str(c["task"]))))
        g.add((ds, DCT.isReferencedBy, model))
        for metric, value in _card_metrics(c).items():
            m = BNode()
            g.add((model, DQV.hasQualityMeasurement, m))
            g.add((m, RDF.type, DQV.QualityMeasurement))
            g.add((m, DQV.isMeasurementOf, AQ[f"metric-{re.sub(r'[^A-Za-z0-9_.-]', '_', metric)}"]))
            g.add((m, DQV.value, Literal(float(value))))
    for f in d.get("funding") or []:
        att = BNode()
        g.add((ds, PROV.qualifiedAttribution, att))
        g.add((att, RDF.type, PROV.Attribution))
        funder = URIRef(_pid_url(f["funder_id"])) if f.get("funder_id") else BNode()
        g.add((funder, RDF.type, FOAF.Organization))
        g.add((funder, FOAF.name, Literal(f["funder"])))
        g.add((att, PROV.agent, funder))
        g.add((att, DCAT.hadRole, URIRef("http://id.loc.gov/vocabulary/relators/fnd")))
        if f.get("award"):
            g.add((att, RDFS.comment, Literal(f"award {f['award']}" + (f": {f['award_title']}"
                                                                       if f.get("award_title") else ""))))
    # provenance: curation steps
    prov_text = []
    for i, rep in enumerate(rec["reports"]):
        step = BNode()
        g.add((ds, PROV.wasGeneratedBy, step))
        g.add((step, RDF.type, PROV.Activity))
        label = _report_label(rep)
        g.add((step, RDFS.label, Literal(label)))
        g.add((step, DCT.description, Literal(json.dumps(_report_summary(rep), sort_keys=True))))
        prov_text.append(f"{i + 1}. {label}")
    if rec["audit"] is not None:
        step = BNode()
        g.add((ds, PROV.wasGeneratedBy, step))
        g.add((step, RDF.type, PROV.Activity))
        g.add((step, RDFS.label, Literal("dataset audit (label issues, duplicates, bias, leakage)")))
        prov_text.append(f"{len(prov_text) + 1}. audit")
    if rec["source_format"]:
        prov_text.insert(0, f"read from the {rec['source_format']} annotation format with imagine")
    if d.get("annotation"):
        a = d["annotation"]
        prov_text.append("annotated" + (f" with {a['tool']}" if a.get("tool") else "")
                         + (f" following {a['protocol']}" if a.get("protocol") else "")
                         + (f"; verification: {a['verification']}" if a.get("verification") else ""))
    if prov_text:
        ps = BNode()
        g.add((ds, DCT.provenance, ps))
        g.add((ps, RDF.type, DCT.ProvenanceStatement))
        g.add((ps, RDFS.label, Literal("; ".join(prov_text), lang="en")))
    # quality: counts and audit numbers as DQV measurements
    measures = {"images": facts.get("images"), "annotations": facts.get("annotations"),
                "classes": len(facts.get("classes") or [])}
    measures.update({f"split-{k}": v for k, v in (facts.get("splits") or {}).items()})
    measures.update({f"audit-{k}": v for k, v in _audit_numbers(rec["audit"]).items()})
    for name, value in measures.items():
        if value is None:
            continue
        m = BNode()
        g.add((ds, DQV.hasQualityMeasurement, m))
        g.add((m, RDF.type, DQV.QualityMeasurement))
        g.add((m, DQV.isMeasurementOf, AQ[f"metric-{name}"]))
        g.add((m, DQV.value, Literal(value)))
    if facts.get("content_hash"):
        g.add((ds, AQ.contentHash, Literal(facts["content_hash"])))
    if facts.get("split_manifest_hash"):
        g.add((ds, AQ.splitManifestHash, Literal(facts["split_manifest_hash"])))
    # distributions
    all_files = dict(files or {})
    for f in rec["data_files"]:
        all_files[f["name"]] = f
    for name, info in all_files.items():
        dist = URIRef(f"{dataset_iri(rec)}#{name}") if not dataset_iri(rec).startswith("urn:") else \
            URIRef(f"{dataset_iri(rec)}:{name}")
        g.add((ds, DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, DCT["title"], Literal(name)))
        g.add((dist, DCT.description, Literal(_file_description(name), lang="en")))
        g.add((dist, DCAT.accessURL, URIRef(_access_url(rec))))
        g.add((dist, DCAT.byteSize, Literal(int(info["bytes"]), datatype=XSD.nonNegativeInteger)))
        if info.get("media_type"):
            mt = URIRef(bundle.IANA_BASE + info["media_type"])
            g.add((dist, DCAT.mediaType, mt))
            g.add((mt, RDF.type, DCT.MediaType))
        if info.get("eu_file_type"):
            ft = URIRef(f"{bundle.EU_BASE}file-type/{info['eu_file_type']}")
            g.add((dist, DCT["format"], ft))
            g.add((ft, RDF.type, DCT.MediaTypeOrExtent))
        if lic is not None:
            g.add((dist, DCT.license, URIRef(lic.uri)))
        ck = BNode()
        g.add((dist, SPDX.checksum, ck))
        g.add((ck, RDF.type, SPDX.Checksum))
        g.add((ck, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        g.add((ck, SPDX.checksumValue, Literal(info["sha256"], datatype=XSD.hexBinary)))
        if name == "croissant.json":
            g.add((dist, DCT.conformsTo, URIRef("http://mlcommons.org/croissant/1.0")))
    return g


def _full_date(s: str, end: bool = False) -> str:
    s = str(s)
    if len(s) == 4:
        return f"{s}-12-31" if end else f"{s}-01-01"
    if len(s) == 7:
        if not end:
            return f"{s}-01"
        import calendar

        y, m = int(s[:4]), int(s[5:7])
        return f"{s}-{calendar.monthrange(y, m)[1]:02d}"
    return s[:10]


def _pid_url(ident: str) -> str:
    ident = ident.strip()
    if re.match(r"^10\.\d{4,9}/", ident):
        return _doi_url(ident)
    if ident.lower().startswith("doi:"):
        return _doi_url(ident[4:])
    return ident


def _file_description(name: str) -> str:
    return {
        "dcat.ttl": "DCAT-AP 3 metadata (aquatic profile), Turtle",
        "dcat.jsonld": "DCAT-AP 3 metadata (aquatic profile), JSON-LD",
        "schema-org.jsonld": "schema.org Dataset metadata, JSON-LD",
        "croissant.json": "MLCommons Croissant metadata, JSON-LD",
        "zenodo.json": "Zenodo deposit metadata (DataCite-shaped)",
        "README.md": "Dataset card",
        "annotations.csv": "All annotations: image, split, label, taxon, geometry kind and box in pixels",
    }.get(name, f"data file {name}")


def _report_label(rep: dict[str, Any]) -> str:
    if "source_format" in rep and "target_format" in rep:
        return f"conversion {rep.get('source_format')} -> {rep.get('target_format')}"
    return str(rep.get("kind") or rep.get("name") or rep.get("title") or "curation step")


def _report_summary(rep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rep.items():
        if isinstance(v, int | float | str | bool) and len(str(v)) < 200:
            out[k] = v
    if isinstance(rep.get("losses"), list):
        out["losses"] = {x.get("code"): x.get("count") for x in rep["losses"] if isinstance(x, dict)}
    if isinstance(rep.get("summary"), dict):
        out["summary"] = {k: v for k, v in rep["summary"].items() if isinstance(v, int | float | str | bool)}
    return out


def _audit_numbers(audit: dict[str, Any] | None) -> dict[str, float]:
    """Numeric summary values of an audit report (top level or ``summary``), flattened one level."""
    if not audit:
        return {}
    out: dict[str, float] = {}
    src = audit.get("summary") if isinstance(audit.get("summary"), dict) else audit
    assert isinstance(src, dict)
    for k, v in src.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            out[k] = v
        elif isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, int | float) and not isinstance(v2, bool):
                    out[f"{k}.{k2}"] = v2
    return out


def _card_metrics(card: dict[str, Any]) -> dict[str, float]:
    m = card.get("metrics") or {}
    if isinstance(m, dict):
        return {k: v for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {}


# ------------------------------------------------------------------------------------------
# schema.org


def _person_sdo(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": "Person", "name": p["name"]}
    if p.get("orcid"):
        out["@id"] = _orcid_iri(p["orcid"])
        out["identifier"] = _orcid_iri(p["orcid"])
    if p.get("affiliation"):
        aff: dict[str, Any] = {"@type": "Organization", "name": p["affiliation"]}
        if p.get("ror"):
            aff["@id"] = p["ror"]
        out["affiliation"] = aff
    return out


def build_schema_org(rec: dict[str, Any], files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """schema.org Dataset JSON-LD (what search engines and F-UJI harvest)."""
    d = _desc(rec)
    lic = rec["licence"]
    doc: dict[str, Any] = {
        "@context": "https://schema.org/", "@type": "Dataset", "@id": dataset_iri(rec), "name": d["title"],
        "description": d["description"].strip(), "url": d.get("landing_page") or dataset_iri(rec),
        "creator": [_person_sdo(p) for p in d.get("creators") or []],
        "datePublished": _pub_date(rec), "dateModified": rec["generated"][:10], "inLanguage": d.get("language", "en"),
        "isAccessibleForFree": d.get("access_right", "open") == "open",
        "keywords": list(d.get("keywords") or []),
        "conditionsOfAccess": d.get("access_right", "open"),
    }
    if d.get("doi"):
        doc["identifier"] = {"@type": "PropertyValue", "propertyID": "DOI", "value": d["doi"],
                             "url": _doi_url(d["doi"])}
    if d.get("version"):
        doc["version"] = str(d["version"])
    if lic is not None:
        doc["license"] = lic.uri
    pub = d.get("publisher")
    doc["publisher"] = {"@type": "Organization", "name": pub["name"]} if pub else {"@type": "Organization",
                                                                                   "name": "Zenodo"}
    about = []
    for t in _taxa_matched(rec):
        about.append({"@type": "Taxon", "@id": t["uri"], "name": t.get("accepted_name") or t["label"],
                      "taxonRank": t.get("rank"), "alternateName": t["label"],
                      "sameAs": t.get("url")})
    for p in rec["parameters"]:
        about.append({"@type": "DefinedTerm", "@id": p["uri"], "name": p["label"], "termCode": p.get("urn")})
    if about:
        doc["about"] = [{k: v for k, v in a.items() if v} for a in about]
    techniques = [r for r in (rec["instrument"], rec["instrument_category"], rec["platform"]) if r]
    if techniques:
        doc["measurementTechnique"] = [{"@type": "DefinedTerm", "@id": r["uri"], "name": r["label"],
                                        **({"termCode": r["urn"]} if r.get("urn") else {})} for r in techniques]
    places: list[dict[str, Any]] = []
    for s in d.get("sites") or []:
        pl: dict[str, Any] = {"@type": "Place", "name": s["name"]}
        if s.get("uri"):
            pl["@id"] = s["uri"]
        if "latitude" in s and "longitude" in s:
            pl["geo"] = {"@type": "GeoCoordinates", "latitude": s["latitude"], "longitude": s["longitude"]}
        places.append(pl)
    for a in rec["sea_areas"]:
        places.append({"@type": "Place", "@id": a["uri"], "name": a["label"]})
    if rec["bbox"]:
        w, s_, e, n = rec["bbox"]
        places.append({"@type": "Place", "geo": {"@type": "GeoShape", "box": f"{s_} {w} {n} {e}"}})
    if places:
        doc["spatialCoverage"] = places
    span = rec["time_span"] or {}
    if span.get("start") or span.get("end"):
        doc["temporalCoverage"] = f"{span.get('start', '..')}/{span.get('end', '..')}"
    if d.get("funding"):
        doc["funder"] = [{"@type": "Organization", "name": f["funder"], **({"@id": _pid_url(f["funder_id"])}
                                                                           if f.get("funder_id") else {})}
                         for f in d["funding"]]
    refs = [r for r in d.get("related") or [] if r["relation"] in ("isCitedBy", "isReferencedBy", "isDocumentedBy",
                                                                   "isSupplementTo")]
    if refs:
        doc["citation"] = [_pid_url(r["identifier"]) for r in refs]
    facts = rec["facts"]
    doc["variableMeasured"] = [
        {"@type": "PropertyValue", "name": "images", "value": facts.get("images")},
        {"@type": "PropertyValue", "name": "annotations", "value": facts.get("annotations")},
        {"@type": "PropertyValue", "name": "classes", "value": len(facts.get("classes") or [])},
    ]
    dist = []
    for name, info in {**(files or {}), **{f["name"]: f for f in rec["data_files"]}}.items():
        dd: dict[str, Any] = {"@type": "DataDownload", "name": name, "contentSize": f"{info['bytes']} B",
                              "sha256": info["sha256"]}
        if info.get("media_type"):
            dd["encodingFormat"] = info["media_type"]
        if d.get("landing_page"):
            dd["contentUrl"] = d["landing_page"].rstrip("/") + f"/files/{name}"
        dist.append(dd)
    if dist:
        doc["distribution"] = dist
    return doc


# ------------------------------------------------------------------------------------------
# Croissant


def build_croissant(rec: dict[str, Any], annotations: dict[str, Any] | None) -> dict[str, Any]:
    """MLCommons Croissant 1.0 JSON-LD: image FileSet, the annotations CSV and its RecordSets."""
    d = _desc(rec)
    facts = rec["facts"]
    lic = rec["licence"]
    creators = [{"@type": "sc:Person", "name": p["name"], **({"url": _orcid_iri(p["orcid"])} if p.get("orcid")
                                                             else {})} for p in d.get("creators") or []]
    doc: dict[str, Any] = {
        "@context": CROISSANT_CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": re.sub(r"[^A-Za-z0-9_-]+", "_", d["title"]).strip("_")[:100] or "dataset",
        "description": d["description"].strip(), "url": d.get("landing_page") or dataset_iri(rec),
        "creator": creators, "datePublished": _pub_date(rec), "keywords": list(d.get("keywords") or []),
        "version": _semver(str(d.get("version") or "1.0.0")),
        "citeAs": _citation(rec),
    }
    if lic is not None:
        doc["license"] = lic.uri
    if d.get("doi"):
        doc["sameAs"] = _doi_url(d["doi"])
    exts = [e for e in (facts.get("image_formats") or {}) if e]
    dist: list[dict[str, Any]] = []
    if annotations is not None:
        dist.append({"@type": "cr:FileObject", "@id": "annotations.csv", "name": "annotations.csv",
                     "contentUrl": "annotations.csv", "encodingFormat": "text/csv", "sha256": annotations["sha256"],
                     "contentSize": f"{annotations['bytes']} B"})
    archives = [f for f in rec["data_files"] if f["name"].lower().endswith((".zip", ".tar", ".tar.gz", ".tgz"))]
    for f in rec["data_files"]:
        dist.append({"@type": "cr:FileObject", "@id": f["name"], "name": f["name"], "contentUrl": f["name"],
                     "encodingFormat": f.get("media_type") or "application/octet-stream", "sha256": f["sha256"],
                     "contentSize": f"{f['bytes']} B"})
    for i, ext in enumerate(exts):
        fs: dict[str, Any] = {"@type": "cr:FileSet", "@id": "image-files" if i == 0 else f"image-files-{ext}",
                              "name": "image-files" if i == 0 else f"image-files-{ext}",
                              "encodingFormat": (facts["image_formats"][ext].get("media_type") or "image/jpeg"),
                              "includes": f"**/*.{ext}"}
        if archives:
            fs["containedIn"] = {"@id": archives[0]["name"]}
        dist.append(fs)
    doc["distribution"] = dist
    record_sets: list[dict[str, Any]] = []
    classes = facts.get("classes") or []
    if classes:
        taxa = {t["label"]: t for t in rec["taxa"]}
        record_sets.append({
            "@type": "cr:RecordSet", "@id": "classes", "name": "classes", "dataType": "sc:Enumeration",
            "description": "Class labels with their taxon (WoRMS LSID) when they name an organism",
            "key": {"@id": "classes/name"},
            "field": [
                {"@type": "cr:Field", "@id": "classes/name", "name": "classes/name", "dataType": "sc:Text"},
                {"@type": "cr:Field", "@id": "classes/taxon", "name": "classes/taxon", "dataType": "sc:URL"},
                {"@type": "cr:Field", "@id": "classes/count", "name": "classes/count", "dataType": "sc:Integer"},
            ],
            "data": [{"classes/name": c["name"], "classes/taxon": (taxa.get(c["name"]) or {}).get("uri") or "",
                      "classes/count": c["annotations"]} for c in classes],
        })
    if annotations is not None:
        def col(name: str, dtype: str, desc: str = "") -> dict[str, Any]:
            f = {"@type": "cr:Field", "@id": f"annotations/{name}", "name": f"annotations/{name}", "dataType": dtype,
                 "source": {"fileObject": {"@id": "annotations.csv"}, "extract": {"column": name}}}
            if desc:
                f["description"] = desc
            return f
        label = col("label", "sc:Text", "class label")
        label["references"] = {"field": {"@id": "classes/name"}}
        record_sets.append({
            "@type": "cr:RecordSet", "@id": "annotations", "name": "annotations",
            "description": "One record per annotation (bounding box envelope in pixels, x y w h)",
            "field": [col("image", "sc:Text", "image file, relative to the dataset root"),
                      col("split", "sc:Text", "train / valid / test split"), label,
                      col("taxon", "sc:URL", "WoRMS LSID of the class"), col("kind", "sc:Text", "geometry kind"),
                      col("bbox", "cr:BoundingBox", "box as x y w h in pixels")],
        })
    if exts:
        record_sets.append({
            "@type": "cr:RecordSet", "@id": "images", "name": "images", "description": "Image files",
            "field": [{"@type": "cr:Field", "@id": "images/image", "name": "images/image", "dataType": "sc:ImageObject",
                       "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "content"}}},
                      {"@type": "cr:Field", "@id": "images/filename", "name": "images/filename", "dataType": "sc:Text",
                       "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "filename"}}}],
        })
    doc["recordSet"] = record_sets
    return doc


def _semver(v: str) -> str:
    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", v)
    if not m:
        return "1.0.0"
    return f"{m.group(1)}.{m.group(2) or 0}.{m.group(3) or 0}"


def _citation(rec: dict[str, Any]) -> str:
    d = _desc(rec)
    names = "; ".join(p["name"] for p in d.get("creators") or [])
    year = _pub_date(rec)[:4]
    tail = f" https://doi.org/{d['doi']}" if d.get("doi") else ""
    ver = f" (Version {d['version']})" if d.get("version") else ""
    return f"{names} ({year}). {d['title']}{ver} [Data set]. {(d.get('publisher') or {}).get('name', 'Zenodo')}.{tail}"


# ------------------------------------------------------------------------------------------
# Zenodo deposit metadata (legacy deposit API, DataCite-shaped)


def build_zenodo(rec: dict[str, Any]) -> dict[str, Any]:
    """``{"metadata": {...}}`` for Zenodo's deposit API (licence ids, relations and shapes it accepts)."""
    d = _desc(rec)
    lic = rec["licence"]
    md: dict[str, Any] = {
        "upload_type": "dataset",
        "title": d["title"],
        "creators": [{k: v for k, v in {"name": p["name"], "orcid": (p.get("orcid") or "").removeprefix(
            "https://orcid.org/") or None, "affiliation": p.get("affiliation")}.items() if v}
            for p in d.get("creators") or []],
        "description": _html_description(rec),
        "access_right": d.get("access_right", "open"),
        "publication_date": _pub_date(rec),
        "keywords": list(dict.fromkeys(list(d.get("keywords") or []) + [t.get("accepted_name") or t["label"]
                                                                        for t in _taxa_matched(rec)])),
    }
    if lic is not None and md["access_right"] in ("open", "embargoed"):
        md["license"] = lic.zenodo_id
    if d.get("embargo_date"):
        md["embargo_date"] = d["embargo_date"]
    if d.get("version"):
        md["version"] = str(d["version"])
    if d.get("doi"):
        md["doi"] = d["doi"]
    lang = d.get("language", "en")
    md["language"] = {"en": "eng", "fr": "fra", "es": "spa", "de": "deu", "it": "ita", "nl": "nld"}.get(lang, lang)
    subjects = []
    for t in _taxa_matched(rec):
        subjects.append({"term": t.get("accepted_name") or t["label"], "identifier": t.get("url") or t["uri"],
                         "scheme": "url"})
    for r in [rec["instrument"], rec["instrument_category"], rec["platform"], *rec["parameters"], *rec["sea_areas"]]:
        if r:
            subjects.append({"term": r["label"], "identifier": r["uri"], "scheme": "url"})
    for s in d.get("subjects") or []:
        subjects.append({"term": s["term"], "identifier": s["identifier"], "scheme": s.get("scheme", "url")})
        # Zenodo's Dublin Core (what FAIR EVA reads) carries keywords, not subject identifiers: a subject
        # from a vocabulary FAIR EVA recognises (Wikidata, LOC, GeoNames, Getty, COAR) is added as a keyword.
        if any(h in s["identifier"] for h in FAIR_EVA_CV_HOSTS) and s["identifier"] not in md["keywords"]:
            md["keywords"].append(s["identifier"])
    if subjects:
        md["subjects"] = subjects
    related = [{"identifier": _pid_url(r["identifier"]) if not re.match(r"^10\.", r["identifier"]) else r["identifier"],
                "relation": r["relation"], **({"resource_type": r["resource_type"]} if r.get("resource_type") else {})}
               for r in d.get("related") or []]
    for m in d.get("models") or []:
        related.append({"identifier": m["identifier"], "relation": "isSourceOf", "resource_type": "software"})
    for c in rec["cards"]:
        ident = c.get("identifier") or c.get("weights_doi")
        if ident:
            related.append({"identifier": ident, "relation": "isSourceOf", "resource_type": "software"})
    if related:
        md["related_identifiers"] = related
    if d.get("contributors"):
        md["contributors"] = [{k: v for k, v in {"name": p["name"], "type": p.get("role", "DataCurator"),
                                                 "orcid": p.get("orcid"), "affiliation": p.get("affiliation")}.items()
                               if v} for p in d["contributors"]]
    if d.get("communities"):
        md["communities"] = [{"identifier": c} for c in d["communities"]]
    grants = [f"{f['funder_id'].removeprefix('https://doi.org/')}::{f['award']}" for f in d.get("funding") or []
              if f.get("funder_id", "").removeprefix("https://doi.org/").startswith("10.13039/") and f.get("award")]
    if grants:
        md["grants"] = [{"id": g} for g in grants]
    locs = [{"place": s["name"], **({"lat": s["latitude"], "lon": s["longitude"]} if "latitude" in s else {})}
            for s in d.get("sites") or []]
    if locs:
        md["locations"] = locs
    span = rec["time_span"] or {}
    if span.get("start") or span.get("end"):
        md["dates"] = [{k: v for k, v in {"start": span.get("start"), "end": span.get("end"),
                                          "type": "Collected"}.items() if v}]
    if d.get("notes"):
        md["notes"] = d["notes"]
    method = d.get("methods") or _method_text(rec)
    if method:
        md["method"] = method
    custom: dict[str, list[Any]] = {}
    names = [t.get("accepted_name") for t in _taxa_matched(rec) if t.get("accepted_name")]
    ids = [t["lsid"] for t in _taxa_matched(rec) if t.get("lsid")]
    if names:
        custom["dwc:scientificName"] = names
    if ids:
        custom["dwc:scientificNameID"] = ids
    if rec["instrument"]:
        custom["ac:captureDevice"] = [rec["instrument"]["label"]]
    if custom:
        md["custom"] = custom
    return {"metadata": md}


def _method_text(rec: dict[str, Any]) -> str:
    parts = []
    if rec["instrument"]:
        parts.append(f"Images acquired with {rec['instrument']['label']} ({rec['instrument']['uri']})")
    if rec["platform"]:
        parts.append(f"on platform type {rec['platform']['label']} ({rec['platform']['uri']})")
    a = _desc(rec).get("annotation") or {}
    if a:
        parts.append("annotated" + (f" with {a['tool']}" if a.get("tool") else "")
                     + (f", {a['protocol']}" if a.get("protocol") else ""))
    return "; ".join(parts) + ("." if parts else "")


def _html_description(rec: dict[str, Any]) -> str:
    d = _desc(rec)
    facts = rec["facts"]
    paras = [f"<p>{html.escape(p.strip())}</p>" for p in d["description"].strip().split("\n\n") if p.strip()]
    paras.append(f"<p>{facts.get('images', 0)} images, {facts.get('annotations', 0)} annotations, "
                 f"{len(facts.get('classes') or [])} classes"
                 + (f"; splits: {', '.join(f'{k} {v}' for k, v in (facts.get('splits') or {}).items())}" if
                    facts.get("splits") else "") + ".</p>")
    return "".join(paras)


# ------------------------------------------------------------------------------------------
# Dataset card


def build_readme(rec: dict[str, Any]) -> str:
    """The human dataset card (Markdown)."""
    d = _desc(rec)
    facts = rec["facts"]
    lic = rec["licence"]
    lines = [f"# {d['title']}", ""]
    if d.get("doi"):
        lines += [f"DOI: [{d['doi']}](https://doi.org/{d['doi']})", ""]
    lines += [d["description"].strip(), "", "## Summary", "",
              "| | |", "|---|---|",
              f"| images | {facts.get('images')} |", f"| annotations | {facts.get('annotations')} |",
              f"| classes | {len(facts.get('classes') or [])} |",
              f"| splits | {', '.join(f'{k}: {v}' for k, v in (facts.get('splits') or {}).items())} |",
              "| annotation kinds | " + ", ".join(f"{k}: {v}" for k, v in (facts.get("annotation_kinds") or {}).items())
              + " |",
              "| image formats | " + ", ".join(f"{k}: {v['count']}"
                                              for k, v in (facts.get("image_formats") or {}).items()) + " |"]
    sz = facts.get("image_sizes") or {}
    if sz:
        lines.append(f"| image size (w×h, median) | {sz['width']['median']:.0f}×{sz['height']['median']:.0f} "
                     f"(min {sz['width']['min']}×{sz['height']['min']}, "
                     f"max {sz['width']['max']}×{sz['height']['max']}) |")
    lines.append(f"| licence | {lic.spdx if lic else d.get('license')} |")
    for key, title in (("instrument", "instrument"), ("instrument_category", "instrument type"),
                       ("platform", "platform")):
        if rec[key]:
            lines.append(f"| {title} | [{rec[key]['label']}]({rec[key]['uri']}) |")
    span = rec["time_span"] or {}
    if span:
        lines.append(f"| time span | {span.get('start', '?')} – {span.get('end', '?')} |")
    if d.get("sites"):
        lines.append(f"| sites | {', '.join(s['name'] for s in d['sites'])} |")
    if rec["sea_areas"]:
        lines.append(f"| sea areas | {', '.join(a['label'] for a in rec['sea_areas'])} |")
    if facts.get("content_hash"):
        lines.append(f"| content hash | `{facts['content_hash']}` |")
    taxa = {t["label"]: t for t in rec["taxa"]}
    splits = list(facts.get("splits") or {})
    lines += ["", "## Classes", "", "| class | taxon | " + " | ".join(splits) + " | total |",
              "|---|---|" + "---|" * len(splits) + "---|"]
    for c in facts.get("classes") or []:
        t = taxa.get(c["name"], {})
        if t.get("uri"):
            tx = f"[*{t.get('accepted_name') or t.get('scientific_name')}*]({t.get('url') or t['uri']})"
        elif t.get("status") == "non-taxon":
            tx = "(not an organism)"
        elif t.get("accepted_name"):
            tx = f"*{t['accepted_name']}* (no id)"
        else:
            tx = "(unmapped)"
        lines.append(f"| {c['name']} | {tx} | " + " | ".join(str(c["per_split"].get(s, 0)) for s in splits)
                     + f" | {c['annotations']} |")
    if d.get("creators"):
        lines += ["", "## Creators", ""]
        for p in d["creators"]:
            lines.append(f"- {p['name']}" + (f" ([ORCID]({_orcid_iri(p['orcid'])}))" if p.get("orcid") else "")
                         + (f", {p['affiliation']}" if p.get("affiliation") else ""))
    if d.get("annotation") or rec["reports"] or rec["audit"]:
        lines += ["", "## Provenance and quality", ""]
        a = d.get("annotation") or {}
        if a:
            lines.append("- annotation: " + ", ".join(f"{k}: {v}" for k, v in a.items()))
        for rep in rec["reports"]:
            lines.append(f"- {_report_label(rep)}")
        for k, v in _audit_numbers(rec["audit"]).items():
            lines.append(f"- audit {k}: {v}")
    if rec["cards"] or d.get("models"):
        lines += ["", "## Baselines", ""]
        for c in rec["cards"]:
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in _card_metrics(c).items())
            lines.append(f"- {c.get('title') or c.get('model') or c.get('name', 'model')}: {metrics}")
        for m in d.get("models") or []:
            lines.append(f"- {m.get('title', m['identifier'])}: {m['identifier']}")
    lines += ["", "## Citation", "", _citation(rec), "", "## Licence", "",
              f"{lic.name} ([{lic.spdx}]({lic.uri}))." if lic else str(d.get("license")), ""]
    lines += ["Vocabularies: " + "; ".join(sorted({bundle.sources()["collections"][c]["attribution"]
                                                    for c in ("L22", "WoRMS")})), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------


def write_outputs(rec: dict[str, Any], out: Path) -> dict[str, dict[str, Any]]:
    """Write every metadata file into ``out`` (an empty folder); returns name → size/checksums/media type."""
    from .describe import file_info

    files: dict[str, dict[str, Any]] = {}
    ann = out / "annotations.csv"
    if ann.exists():
        files["annotations.csv"] = file_info(ann)

    def dump(name: str, obj: Any) -> None:
        with atomic_write(out / name) as fh:
            json.dump(obj, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        files[name] = file_info(out / name)

    dump("croissant.json", build_croissant(rec, files.get("annotations.csv")))
    dump("schema-org.jsonld", build_schema_org(rec, dict(files)))
    dump("zenodo.json", build_zenodo(rec))
    with atomic_write(out / "README.md") as fh:
        fh.write(build_readme(rec))
    files["README.md"] = file_info(out / "README.md")
    g = build_dcat(rec, dict(files))
    with atomic_write(out / "dcat.ttl") as fh:
        fh.write(g.serialize(format="turtle"))
    with atomic_write(out / "dcat.jsonld") as fh:
        fh.write(g.serialize(format="json-ld", context={k: v for k, v in NS.items()}, indent=2))
    files["dcat.ttl"] = file_info(out / "dcat.ttl")
    files["dcat.jsonld"] = file_info(out / "dcat.jsonld")
    return files
