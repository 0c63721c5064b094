"""Write ``reference_features.parquet``: the demo's feature table as computed before the spine move.

Run once, from a checkout of commit 2fea36f (the last commit before the move), with
``PYTHONPATH=<that checkout> python tests/data/make_reference.py OUT.parquet``. The
test ``tests/test_reference_features.py`` recomputes the same table with today's code
and compares every value, so a refactoring that changes a feature cannot land unseen.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

# The demo data and extract settings the test uses too (kept small: CI runs it).
DEMO = {"n_clips": 10, "seed": 7, "duration_s": 3.0, "label_noise": 0.1, "n_broken": 2}
EMBEDDERS = ["vggish", "yamnet", "panns"]


def main(out: str) -> None:
    try:  # before the move
        from acoustic_env.synth import generate_demo

        from acoustic_env.config import extract_config_from_dict
        from acoustic_env.jobs.extract import extract
    except ImportError:  # after it
        from functools import partial

        from acoustic_env.config import ExtractConfig, from_dict
        from acoustic_env.demo.synth import generate_demo
        from acoustic_env.jobs.extract import extract

        extract_config_from_dict = partial(from_dict, ExtractConfig)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_demo(data, **DEMO)
        extract(extract_config_from_dict({
            "manifest": str(data / "clips.csv"), "audio_root": str(data / "audio"), "output": f"{tmp}/out",
            "embedders": EMBEDDERS, "allow_random_weights": True, "progress": False}))
        table = pq.read_table(f"{tmp}/out/features").sort_by("clip_id")
        keep = [c for c in table.column_names if c not in ("uri",)]
        pq.write_table(table.select(keep).replace_schema_metadata(None), out, compression="zstd")


if __name__ == "__main__":
    main(sys.argv[1])
