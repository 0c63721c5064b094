"""`acoustic-env demo`: the whole product on generated data, offline, on one machine.

Generates labelled synthetic soundscapes (a known share of labels flipped and a
few deliberately broken files, see ``synth.generate_demo``), runs the extract
job on them with local Ray and local disk, trains the environment classifier
(a small search) and writes its report, then audits the labels and scores the
audit against the generator's truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acoustic_env.config import EMBEDDERS, extract_config_from_dict
from acoustic_env.demo.audit import run_audit_demo
from acoustic_env.demo.synth import generate_demo
from acoustic_env.demo.train import run_train_demo
from acoustic_env.extract import extract

DEMO_LABEL_NOISE = 0.1


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
    features: dict[str, Any] = {"impl": features_impl} if features_impl else {}
    # Pretrained weights cannot be assumed offline: the demo runs the three embedders with
    # explicit random weights (recorded as "random" in the run record and the table metadata)
    # unless the model cache holds the real checkpoints (`acoustic-env models fetch`).
    cfg = extract_config_from_dict({
        "manifest": str(data_dir / "clips.csv"), "audio_root": str(data_dir / "audio"),
        "output": str(output / "extract"), "progress": progress, "features": features,
        "embedders": list(EMBEDDERS), "allow_random_weights": True,
    })
    record = extract(cfg)
    c = record["counts"]
    print(f"extract: {c['ok']} clips in features/, {c['errors_in_output']} in errors/ "
          f"({', '.join(f'{k}={v}' for k, v in sorted(record['error_types'].items())) or 'none this run'}), "
          f"{c['skipped']} already done; {record['wall_s']:.1f} s")
    print(f"  output: {output / 'extract'}  (features/, errors/, runs/{record['run_id']}.json)")
    print("  embedder weights: " + ", ".join(f"{k}={v[:12]}" for k, v in record["weights"].items()))
    train = run_train_demo(str(output / "extract"), output / "train")
    audit = run_audit_demo(str(output / "extract"), data_dir / "truth.csv", output / "audit")
    return {"extract": record, "train": train, "audit": audit}
