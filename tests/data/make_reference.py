"""Write ``reference_features.parquet``: the demo's feature table as computed before the spine move.

``reference_demo/`` holds the input: ``generate_demo(**DEMO)`` as the generator made it at
commit 2fea36f (the last commit before the move), kept here so that later changes to the
demo generator cannot move the comparison. The reference table was computed at that commit
with ``PYTHONPATH=<that checkout> python tests/data/make_reference.py OUT.parquet``; the test
``tests/test_reference_features.py`` recomputes it with today's code through ``main`` and
compares every value, so a refactoring that changes a feature cannot land unseen.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEMO = {"n_clips": 10, "seed": 7, "duration_s": 3.0, "label_noise": 0.1, "n_broken": 2}  # how reference_demo/ was made
EMBEDDERS = ["vggish", "yamnet", "panns"]


def main(out: str) -> None:
    data = HERE / "reference_demo"
    with tempfile.TemporaryDirectory() as tmp:
        config = {"manifest": str(data / "clips.csv"), "audio_root": str(data / "audio"), "output": f"{tmp}/out",
                  "embedders": EMBEDDERS, "allow_random_weights": True, "progress": False}
        try:  # before the move
            from acoustic_env.config import extract_config_from_dict
            from acoustic_env.extract import extract
        except ImportError:  # after it
            import acoustic_env as ae

            ae.extract(config=config)
        else:
            extract(extract_config_from_dict(config))
        table = pq.read_table(f"{tmp}/out/features").sort_by("clip_id")
        keep = [c for c in table.column_names if c not in ("uri",)]
        pq.write_table(table.select(keep).replace_schema_metadata(None), out, compression="zstd")


if __name__ == "__main__":
    main(sys.argv[1])
