"""CPU time of the review page an audit writes (``pages.review.build_review``): every clip's Ogg and spectrogram,
then the page, on a real audit's output.

    python benchmarks/review_assets.py --audit demo-output/audit [--vs /tmp/review_before.py] [--repeats 3]

``--vs`` names another version of ``acoustic_env/pages/review.py`` (``git show REV:acoustic_env/pages/review.py``):
the page, and one clip's spectrogram, are then made by both in turn (A B A B ...), on the same table, and the rows add
the ratio now / before. CPU time (``time.process_time``), medians of ``--repeats`` after one unrecorded warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from in_turn import cpu_ms, other_version  # noqa: E402 - after the path insert
from machine import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", required=True, help="an audit's output folder (its table and summary)")
    parser.add_argument("--vs", type=Path, metavar="REVIEW_PY", help="another version of pages/review.py")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from acoustic_env.pages import review
    import pyarrow.parquet as pq

    table = pq.read_table(Path(args.audit) / "audit.parquet")
    summary = json.loads((Path(args.audit) / "summary.json").read_text())
    cfg = summary["config"]
    versions = [review] + ([other_version(args.vs, "review_vs")] if args.vs else [])

    def page(module: ModuleType) -> Callable[[], Any]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as out:
                module.build_review(table, summary, out, cfg["review_top"], cfg["random_sample"], cfg["seed"])
        return run

    audio = review.clip_audio(table["uri"][0].as_py(), table["start_s"][0].as_py(), table["end_s"][0].as_py())
    rows = [("one clip's spectrogram (`spectrogram_png`)", [lambda m=m: m.spectrogram_png(audio) for m in versions]),
            (f"the page (`build_review`: {cfg['review_top']} suspects, {cfg['random_sample']} random)",
             [page(m) for m in versions])]
    print(f"{describe()}, {date.today()}; {len(table)} audited clips, {audio.size / review.SAMPLE_RATE:.1f} s "
          f"clips; CPU ms, medians of {args.repeats}" + (f"; before: {args.vs}" if args.vs else ""))
    print("\n| what | CPU ms |" + " before ms | ratio |" * bool(args.vs))
    print("|---|---:|" + "---:|---:|" * bool(args.vs))
    for label, fns in rows:
        ms = cpu_ms(fns, args.repeats)
        print(f"| {label} | {ms[0]:.0f} |" + (f" {ms[1]:.0f} | {ms[0] / ms[1]:.2f} |" if args.vs else ""), flush=True)


if __name__ == "__main__":
    main()
