"""The main job on the bundled sample: the whole path from an annotation export to a DOI.

curate (validate, read, convert) → baseline (a small detector, its benchmark card and predictions)
→ audit (label issues from those predictions, bias, duplicates, leakage) → describe (DCAT-AP,
schema.org, Croissant, Zenodo metadata from the bundled description) → FAIR check → package →
deposit to the local Zenodo-compatible repository → the DOI and the FAIR score.
It lives in ``imagine.publish`` because it uses every package to its left.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from imagine.curate.audit import audit, write_audit
from imagine.curate.demo import DemoResult, run_curation, sample_path
from imagine.curate.formats import read_dataset
from imagine.kernel import dump_json

DESCRIPTION = "aquarium.yaml"


def run_demo(out: Path, *, epochs: int = 2, max_steps: int | None = 12) -> DemoResult:
    """Run every step on the bundled Aquarium sample; outputs under ``out``; local repository under ``out``."""
    from imagine.models.baseline import baseline
    from imagine.models.train import TrainConfig

    from .deposit import package, publish_dataset
    from .describe import describe
    from .fair import fair_score

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    with sample_path() as src, resources.as_file(resources.files("imagine.publish").joinpath("sample")) as meta_dir:
        ds = run_curation(src, out / "curate", result)

        cfg = TrainConfig.for_task("detect", epochs=epochs, max_steps=max_steps, image_size=128, bootstrap=100)
        card = baseline(src, "detect", out / "baseline", cfg=cfg, command=f"imagine-publish demo --out {out}")
        m = card["metrics"]
        headline = {k: v["value"] if isinstance(v, dict) else v for k, v in m.items()
                    if k in ("map50", "map50_95", "mAP50", "mAP50_95")}
        result.add("baseline", f"detector trained {card['training']['steps']} steps; "
                   + ", ".join(f"{k} {v:.3f}" for k, v in headline.items() if isinstance(v, float)),
                   {"card": str(out / "baseline" / "card.json"), "metrics": headline})

        res = audit(ds, predictions=out / "baseline" / "predictions.csv", task="detection", source=str(src))
        write_audit(ds, res, out / "audit")
        li = res.report["label_issues"] or {}
        dup = res.report.get("duplicates") or {}
        result.add("audit", f"{li.get('summary', {}).get('issues', 0)} image(s) with suspect labels, "
                   f"{dup.get('summary', {}).get('groups', 0)} duplicate group(s), imbalance ratio "
                   f"{res.report['bias']['class_balance']['imbalance_ratio']:.1f}",
                   {"report": str(out / "audit" / "audit.json")})

        described = describe(src, meta_dir / DESCRIPTION, out / "metadata", dataset=read_dataset(src),
                             audit=out / "audit" / "audit.json", cards=[out / "baseline" / "card.json"],
                             manifest=out / "baseline" / "split-manifest.json")
        errors = [f for f in described.findings if f.severity == "error"]
        result.add("describe", f"{len(described.files)} metadata files, {len(errors)} error(s)",
                   {"folder": str(out / "metadata"), "findings": [f.to_dict() for f in described.findings]},
                   ok=not errors)
        fair = fair_score(out / "metadata")
        result.add("FAIR check", f"FAIR EVA-compatible score {fair.score:.1f} (cap {fair.cap:.2f}), "
                   f"aquatic profile {fair.aquatic_score:.1f}", {"score": fair.score, "aquatic": fair.aquatic_score})

        package(src, out / "metadata", out / "deposit", cards=[out / "baseline" / "card.json"], formats=["coco"],
                overwrite=True)
        dep = publish_dataset(out / "deposit", local_root=out / "localrepo")
        info: dict[str, Any] = {"doi": dep.doi, "record_id": dep.record_id, "url": dep.url, "state": dep.state}
        result.add("deposit", f"published to the local repository: DOI {dep.doi}; browse it with "
                   f"`imagine-publish serve --root {out / 'localrepo'}`", info, ok=dep.state == "published")
        dump_json(result.as_dict(), out / "demo.json")
    return result
