"""How long `acoustic-env predict` takes on a few files, against annotate's route (extract on Ray, then score).

    python benchmarks/predict.py [--repeats 3] [--work /tmp/predict-bench]

Builds a small world once (generated 2-s clips, the extract job's table, a model trained
without Ray on it, as tests/test_predict.py does), then times, as a user would see them:

- ``acoustic-env predict ONE.flac --model M`` and ``... TWO FILES``: the whole command in a fresh
  process (imports included);
- ``acoustic_env.jobs.predict.predict_files`` on the same files in a warm process (the in-process work alone);
- ``acoustic-env annotate`` on a one-clip list into a fresh table (the route predict replaces for a few
  files: Ray start-up, extract, read back, score).

Medians of ``--repeats`` runs; prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _world(work: Path) -> tuple[list[Path], Path, Path]:
    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.demo.synth import generate_demo

    model = work / "model"
    data = work / "data"
    if not (model / "model.json").is_file():
        demo = generate_demo(data, n_clips=12, duration_s=2.0, n_broken=0, seed=3)
        ae.extract(str(demo.clips_csv), str(work / "features"), audio_root=str(demo.audio_dir), progress=False)
        quick_model(str(work / "features"), str(model))
    files = sorted((data / "audio").glob("*.flac"))
    return files, model, data / "clips.csv"


def _timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default="/tmp/acoustic-env-predict-bench")
    args = ap.parse_args()
    work = Path(args.work)
    files, model, clips_csv = _world(work)
    cli = [sys.executable, "-m", "acoustic_env.cli"]
    rows = []
    for n in (1, 2):
        chosen = [str(f) for f in files[:n]]
        rows.append((f"`acoustic-env predict` {n} file(s), fresh process",
                     statistics.median(_timed([*cli, "predict", *chosen, "--model", str(model)])
                                       for _ in range(args.repeats))))
    import acoustic_env as ae
    from acoustic_env.audio.featurize import clip_rows
    from acoustic_env.jobs.predict import predict_files

    m = ae.load_model(str(model))
    decode, features, _ = m.extraction_params()
    predict_files(m, clip_rows([str(files[0])]), decode, features)  # warm: imports, first-call costs
    for n in (1, 2):
        chosen = [str(f) for f in files[:n]]
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            predict_files(m, clip_rows(chosen), decode, features)
            times.append(time.perf_counter() - t)
        rows.append((f"`predict_files` {n} file(s), warm process", statistics.median(times)))
    one = work / "one.csv"
    lines = clips_csv.read_text().splitlines()
    one.write_text("\n".join([*[line for line in lines if line.startswith("#")],
                              next(line for line in lines if not line.startswith("#"))]) + "\n")
    annotate = []
    for r in range(args.repeats):
        annotate.append(_timed([*cli, "annotate", "--manifest", str(one), "--model", str(model),
                                "--features", str(work / f"ann-features-{time.time_ns()}"),
                                "--output", str(work / f"ann-{r}"), "--audio-root", str(clips_csv.parent / "audio")]))
    rows.append(("`acoustic-env annotate` 1 clip into a fresh table (Ray start-up, extract, score)",
                 statistics.median(annotate)))
    print(f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, median of {args.repeats}\n")
    print("| what | wall s |\n|---|---:|")
    for what, s in rows:
        print(f"| {what} | {s:.2f} |")


if __name__ == "__main__":
    main()
