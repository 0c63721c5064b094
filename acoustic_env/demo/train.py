"""The training step of ``acoustic-env demo``: a small search on the demo's extracted features.

Sized for a 2-core laptop and ~200 clips: a few trials under a time budget,
short runs; it prints the test metrics and where the report is. Embedder
columns computed with random weights (the demo runs offline) are left out:
they are recorded as ``random`` in the table's metadata and carry no
pretrained knowledge, so a model trained on them would only show noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acoustic_env.table import read_metadata
from acoustic_env.train.config import EMBEDDER_SOURCES, train_config_from_dict
from acoustic_env.train.data import features_dir, read_schema
from acoustic_env.train.job import summary_lines, train

DEMO_SEARCH = {"trials": 4, "time_budget_s": 240.0, "max_rounds": 12, "grace_rounds": 3, "patience": 4,
               "shap_samples": 40}


def pretrained_groups(features_uri: str) -> tuple[tuple[str, ...], list[str]]:
    """(sources to train on, embedders left out because their weights were random)."""
    schema = read_schema(features_dir(features_uri))
    weights = read_metadata(schema).get("weights", {})
    embedders = [s for s in EMBEDDER_SOURCES if s in schema.names]
    random = [e for e in embedders if weights.get(e) == "random"]
    return ("indices", "mps", *[e for e in embedders if e not in random]), random


def run_train_demo(features_uri: str, output: Path, seed: int = 0, label_accuracy: str | None = None) -> dict[str, Any]:
    """Train on ``features_uri`` (the extract output) into ``output``; returns the job's summary."""
    groups, random = pretrained_groups(features_uri)
    cfg = train_config_from_dict({"features": features_uri, "output": str(output), "seed": seed, "progress": False,
                                  "groups": groups, "label_accuracy": label_accuracy, **DEMO_SEARCH})
    print(f"training on {features_uri} ({', '.join(groups)}"
          + (f"; left out, random weights: {', '.join(random)}" if random else "")
          + f"): {DEMO_SEARCH['trials']} search trials, at most {DEMO_SEARCH['time_budget_s']:.0f} s ...")
    summary = train(cfg)
    print("\n".join(summary_lines(summary)))
    return summary
