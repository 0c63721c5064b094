"""The training step of ``acoustic-env demo``: a small search on the demo's extracted features.

Sized for a 2-core laptop and ~200 clips: a few trials under a time budget,
short runs; it prints the test metrics and where the report is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import train_config_from_dict
from .job import summary_lines, train

DEMO_SEARCH = {"trials": 4, "time_budget_s": 240.0, "max_rounds": 12, "grace_rounds": 3, "patience": 4,
               "shap_samples": 40}


def run_train_demo(features_uri: str, output: Path, seed: int = 0, label_accuracy: str | None = None) -> dict[str, Any]:
    """Train on ``features_uri`` (the extract output) into ``output``; returns the job's summary."""
    cfg = train_config_from_dict({"features": features_uri, "output": str(output), "seed": seed, "progress": False,
                                  "label_accuracy": label_accuracy, **DEMO_SEARCH})
    print(f"training on {features_uri}: {DEMO_SEARCH['trials']} search trials, "
          f"at most {DEMO_SEARCH['time_budget_s']:.0f} s ...")
    summary = train(cfg)
    print("\n".join(summary_lines(summary)))
    return summary
