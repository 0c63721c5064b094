"""The demo's audit step: audit the generated labels and score the audit against what was really flipped.

``synth.generate_demo`` flips a known share of the class labels and records
which in ``truth.csv``; this runs the audit on the extracted features and
prints how many of those flips it found (recall), how many of its flags were
flips (precision), and its estimated share of wrong labels against the true one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from acoustic_env.audit.config import audit_config_from_dict
from acoustic_env.audit.job import run_audit
from acoustic_env.audit.server import verdicts_uri
from acoustic_env.storage import join, read_part

DEMO_REVIEW = {"review_top": 20, "random_sample": 20}


def score_against_truth(flagged: set[str], audited: set[str], truth_csv: Path) -> dict[str, Any]:
    """Precision and recall of the flags, and the true share of flipped labels among the audited clips."""
    with Path(truth_csv).open(newline="", encoding="utf-8") as fh:
        flipped = {r["clip_id"] for r in csv.DictReader(fh) if r["flipped"] == "1" and r["clip_id"] in audited}
    hits = len(flagged & flipped)
    return {"precision": hits / len(flagged) if flagged else 1.0, "recall": hits / len(flipped) if flipped else 1.0,
            "true_wrong_share": len(flipped) / len(audited) if audited else 0.0, "n_flipped": len(flipped)}


def run_audit_demo(features_uri: str, truth_csv: Path, output: Path) -> dict[str, Any]:
    """Audit the demo's labels with the defaults and print what it found; returns the numbers."""
    cfg = audit_config_from_dict({"features": features_uri, "output": str(output), **DEMO_REVIEW})
    summary = run_audit(cfg)
    table = read_part(join(str(output), "audit.parquet"), columns=["clip_id", "flagged"])
    ids = table["clip_id"].to_pylist()
    flagged = {c for c, f in zip(ids, table["flagged"].to_pylist()) if f}
    score = score_against_truth(flagged, set(ids), truth_csv)
    estimated = summary["noise"]["estimated_wrong_share"]
    print(f"audit: {len(ids)} clips, {len(flagged)} flagged as mislabelled; {score['n_flipped']} were flipped by the generator")
    print(f"  precision {score['precision']:.2f}, recall {score['recall']:.2f}; estimated share of wrong labels "
          f"{estimated:.1%} (true {score['true_wrong_share']:.1%})")
    print(f"  review page: {summary['outputs'].get('review')}  (serve it: acoustic-env audit-review --audit {output} --serve)")
    print(f"  verdicts go to {verdicts_uri(str(output))}; estimate: acoustic-env audit-estimate --verdicts <file>")
    return {**score, "estimated_wrong_share": estimated, "n_audited": len(ids), "n_flagged": len(flagged),
            "output": str(output), "review": summary["outputs"].get("review"), "summary": summary}
