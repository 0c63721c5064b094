"""`acoustic-env demo`: the whole product on generated data, offline, on one machine.

Generates labelled synthetic soundscapes (a known share of labels flipped and a
few deliberately broken files, see ``synth.generate_demo``), then runs the jobs
from the job catalogue, as ``ae.run`` does (the public API sits on the floor above): extract on local Ray and
local disk, train the environment classifier (a little tuning) with its report,
audit the labels, and score the audit against the generator's truth.

The extract runs with the default ``--embedders auto``: every embedder whose real weights are here and
check, and never random ones. With ``make install`` that is BirdNET, whose weights come with its optional
extra; VGGish, YAMNet and PANNs join when their checkpoints are in the model cache. Without any, the demo
runs on the CPU features alone, and its extract line says which embedders ran and why the others did not.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from acoustic_env.config import from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs import catalog
from acoustic_env.jobs.audit.job import summary_lines as audit_lines
from acoustic_env.pages.review import verdicts_uri
from acoustic_env.jobs.train.job import summary_lines as train_lines
from acoustic_env.storage import read_part

DEMO_LABEL_NOISE = 0.1
DEMO_TUNING = {"trials": 4, "time_budget_s": 240.0, "max_rounds": 12, "grace_rounds": 3, "patience": 4,
               "shap_samples": 40}
DEMO_REVIEW = {"review_top": 20, "random_sample": 20}


def _job(name: str, **fields: Any) -> Any:
    """The catalogued job ``name`` on the config of ``fields``, as ``ae.run(name, **fields)`` runs it: each field
    checked first (``ConfigError`` naming a bad one), then the job; its result."""
    spec = catalog.get(name)
    return spec.run(from_dict(spec.config, fields))


def score_against_truth(flagged: set[str], audited: set[str], truth_csv: Path) -> dict[str, Any]:
    """Precision and recall of the flags, and the true share of flipped labels among the audited clips."""
    with Path(truth_csv).open(newline="", encoding="utf-8") as fh:
        flipped = {r["clip_id"] for r in csv.DictReader(fh) if r["flipped"] == "1" and r["clip_id"] in audited}
    hits = len(flagged & flipped)
    return {"precision": hits / len(flagged) if flagged else 1.0, "recall": hits / len(flipped) if flipped else 1.0,
            "true_wrong_share": len(flipped) / len(audited) if audited else 0.0, "n_flipped": len(flipped)}


def audit_against_truth(features: str, truth_csv: Path, output: Path) -> dict[str, Any]:
    """Audit the labels with the defaults, print what it found and how it compares with the truth."""
    result = _job("audit", features=features, output=str(output), **DEMO_REVIEW)
    table = read_part(result.table, columns=["clip_id", "flagged"])
    ids = table["clip_id"].to_pylist()
    flagged = {c for c, f in zip(ids, table["flagged"].to_pylist()) if f}
    score = score_against_truth(flagged, set(ids), truth_csv)
    print("\n".join(audit_lines(result)))
    print(f"  against the generator's truth: {score['n_flipped']} labels were flipped; precision "
          f"{score['precision']:.2f}, recall {score['recall']:.2f}; estimated share of wrong labels "
          f"{result.estimated_wrong_share:.1%} (true {score['true_wrong_share']:.1%})")
    print(f"  serve the review page: acoustic-env audit-review --audit {output} --serve "
          f"(verdicts go to {verdicts_uri(str(output))})")
    return {**score, "estimated_wrong_share": result.estimated_wrong_share, "n_audited": result.audited,
            "n_flagged": result.flagged, "output": str(output), "review": result.review, "summary": result.record}


def run_demo(output: Path, n_clips: int = 200, seed: int = 0, duration_s: float = 10.0,
             features_impl: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate the data (once per seed and size), extract, train and audit; returns what each step reported."""
    data_dir = output / "data"
    marker = data_dir / f".generated-{seed}-{n_clips}-{duration_s:g}"
    if not marker.exists():
        print(f"generating {n_clips} synthetic {duration_s:g}-s clips into {data_dir} ...")
        demo = generate_demo(data_dir, n_clips=n_clips, seed=seed, duration_s=duration_s,
                             label_noise=DEMO_LABEL_NOISE)
        marker.touch()
        print(f"  {demo.n_good} good clips, {demo.n_broken} deliberately broken, {demo.n_flipped} labels flipped")
    features = str(output / "extract")
    run = _job("extract", manifest=str(data_dir / "clips.csv"), output=features, audio_root=str(data_dir / "audio"),
               progress=progress, features={"impl": features_impl} if features_impl else {})
    c = run.counts
    print(f"extract: {c['ok']} clips in features/, {c['errors_in_output']} in errors/ "
          f"({', '.join(f'{k}={v}' for k, v in sorted(run.error_types.items())) or 'none this run'}), "
          f"{c['skipped']} already done; {run.wall_s:.1f} s")
    print(f"  output: {features}  (features/, errors/, runs/{run.run_id}.json)")
    print(f"  {run.record['embedders']['summary']}")
    if run.weights:
        print("  embedder weights: " + ", ".join(f"{k}={v[:12]}" for k, v in run.weights.items()))
    print(f"training (cross-validated on a small table, else {DEMO_TUNING['trials']} tuning trials of at most "
          f"{DEMO_TUNING['time_budget_s']:.0f} s) ...")
    trained = _job("train", features=features, output=str(output / "train"), seed=seed, progress=False, **DEMO_TUNING)
    print("\n".join(train_lines(trained)))
    audit = audit_against_truth(features, data_dir / "truth.csv", output / "audit")
    return {"extract": run.record, "train": trained.record, "audit": audit}
