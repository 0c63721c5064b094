"""The comparison grid (``acoustic-env train --grid``): its wall and CPU time and its table of cells, on two sets.

    python benchmarks/grid.py demo   # the demo's data: acoustic-env demo --clips 40 --duration 2
    python benchmarks/grid.py maad   # the 96 forest recordings of benchmarks/real_data.py (night/day, hour groups)
    python benchmarks/grid.py maad --signals raw --work /tmp/grid-raw   # one signal: 5 cells

Each set is extracted once (a second run reuses it) with the embedders of ``--embedders`` (default every
registered one): VGGish, YAMNet and PANNs at random weights (an empty weights cache: the run record says
``random``), BirdNET pretrained (its weights come with its extra; the run record gives their checksum), and each
embedder's embeddings of the signals of ``--signals`` (default the raw signal and the noisereduce foreground and
background, ``--embed-signals raw,fg,bg``, and all three together): ``acoustic-env demo`` cannot pass
that option, so the demo's data is generated here as the demo generates it
(``generate_demo`` with the demo's size, seed and label noise) and extracted by
the command. Then the grid of (embedders + none) x signal sets (20 cells by default), as a
user types it, with the job's defaults otherwise (5 grouped outer folds,
nested searches, ablations and SHAP for the winner)::

    acoustic-env train --features <extract> --output <grid> --grid --grid-signals raw,fg,bg,all \\
        --include-random-weights

Under cross-validation the train job does not start Ray, so the command's CPU
time is its own process's (``getrusage(RUSAGE_CHILDREN)`` around it). The
extract's CPU time is spread over Ray's workers, which that does not see: only
its wall time is given. The machine is shared, so the load average is printed
at the start and the end of the grid.

Prints a markdown section for benchmarks/RESULTS.md: the commands, the machine,
the date, the load, wall and CPU time, and the table of cells.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import DATA, TASK, write_manifest

from acoustic_env.embedders.registry import names

DEMO = {"n_clips": 40, "duration_s": 2.0, "seed": 0}  # acoustic-env demo --clips 40 --duration 2


def run(argv: list[str]) -> tuple[float, float]:
    """Run a command to its end (its output passes through); (wall s, CPU s of it and its waited-for children)."""
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    print(f"$ {shlex.join(argv)}", file=sys.stderr, flush=True)
    subprocess.run(argv, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time() - t, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def manifest(name: str, work: Path, data: Path) -> tuple[list[str], str]:
    """(the extract's clip-list options, the task) of a set; the demo's data generated once."""
    if name == "maad":
        path = work / "manifest.csv"
        write_manifest(path, data)
        return ["--manifest", str(path)], TASK
    from acoustic_env.demo.run import DEMO_LABEL_NOISE
    from acoustic_env.demo.synth import generate_demo

    root = work / "data"
    if not (root / "clips.csv").exists():
        generate_demo(root, label_noise=DEMO_LABEL_NOISE, **DEMO)
    return ["--manifest", str(root / "clips.csv"), "--audio-root", str(root / "audio")], "urban_natural"


def extract(clips: list[str], work: Path, embedders: str, signals: str) -> tuple[str, float | None]:
    """The feature table with per-signal embeddings (random weights where no pretrained ones are offline), extracted
    once; (its path, wall s or None)."""
    out = work / "extract"
    if (out / "features").exists():
        return str(out), None
    embedded = ",".join(s for s in signals.split(",") if s != "all") or "raw"
    wall, _ = run(["acoustic-env", "extract", *clips, "--output", str(out), "--embedders", embedders,
                   "--embed-signals", embedded, "--allow-random-weights", "--weights-cache",
                   str(work / "no-weights"), "--no-progress"])
    return str(out), wall


def cell_rows(grid: dict) -> list[str]:
    rows = ["| cell (embedder x signals) | chosen model | ROC AUC [95 % group bootstrap] | wall s |",
            "|---|---|---|---:|"]
    for c in grid["cells"]:
        lo, hi = c["roc_auc_interval"] or (float("nan"), float("nan"))
        name = f"{c['embedder']} x {c['signals']}" + (" (winner, saved)" if c["winner"] else "")
        rows.append(f"| {name} | {c['model']} | {c['roc_auc']:.3f} [{lo:.3f}, {hi:.3f}] | {c['seconds']:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=("demo", "maad"))
    ap.add_argument("--work", type=Path, help="where the data, the extract and the grid go "
                                              "(default: a folder per set under the temporary directory)")
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--print-only", action="store_true", help="print the last run's section again, without running")
    ap.add_argument("--embedders", default=",".join(names()), help="the extract's embedders, the grid's rows")
    ap.add_argument("--signals", default="raw,fg,bg,all", help="the grid's signal sets (--grid-signals)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / f"acoustic-env-grid-{args.set}"
    work.mkdir(parents=True, exist_ok=True)
    clips, task = manifest(args.set, work, args.data)
    features, extract_wall = extract(clips, work, args.embedders, args.signals)
    output, measured = work / "grid", work / "measured.json"
    command = ["acoustic-env", "train", "--features", features, "--output", str(output), "--task", task, "--grid",
               "--grid-embedders", f"none,{args.embedders}", "--grid-signals", args.signals, "--include-random-weights",
               "--no-progress"]
    if not args.print_only:
        load_start, start = os.getloadavg(), dt.datetime.now(dt.timezone.utc)
        wall, cpu = run(command)
        measured.write_text(json.dumps({"wall": wall, "cpu": cpu, "load_start": load_start, "load_end":
                                        os.getloadavg(), "start": f"{start:%Y-%m-%d %H:%M}", "extract": extract_wall}))
    m = json.loads(measured.read_text())
    metrics = json.loads((output / "report" / "metrics.json").read_text())
    grid, ev = metrics["grid"], metrics["evaluation"]
    weights = json.loads(max((Path(features) / "runs").glob("*.json"), key=os.path.getmtime).read_text())["weights"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = lambda a: "/".join(f"{v:.1f}" for v in a)  # noqa: E731
    print(f"\n`python benchmarks/grid.py {args.set}` at {commit}, {m['start']} UTC; {describe()}; load average "
          f"(1/5/15 min) {load(m['load_start'])} at the start of the grid, {load(m['load_end'])} at its end\n")
    print(f"    {shlex.join(command)}\n")
    n = sum(v["clips"] for v in metrics["counts"]["splits"].values())
    print(f"- {n} clips, {ev['folds']} grouped outer folds; extract "
          + (f"{m['extract']:.0f} s wall" if m["extract"] is not None else "reused from an earlier run")
          + f"; embedder weights: {', '.join(f'{k} {v[:12]}' for k, v in weights.items())}")
    print(f"- grid ({len(grid['cells'])} cells): {grid['wall_s']:.0f} s wall; the whole command (grid, the winner's "
          f"final fit, ablations, SHAP, report): {m['wall']:.0f} s wall, {m['cpu']:.0f} s CPU (user + system; "
          f"/ 2 cores = {m['cpu'] / 2:.0f} s); chosen model of the winner: {ev['chosen']}, saved "
          f"{ev['saved_model']}\n")
    print("\n".join(cell_rows(grid)))

if __name__ == "__main__":
    main()
