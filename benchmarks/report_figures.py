"""CPU time of the training report's figures, one by one, on a real train run's results (issue 59).

    python benchmarks/report_figures.py --features demo-output/extract [--task urban_natural]
        [--results /tmp/demo.pkl] [--vs /tmp/plots_before.py] [--repeats 3]

Trains ``--features`` once in this process (``jobs.train``, defaults otherwise) and keeps the
results dict the job hands to ``pages.report.write_report``; with ``--results`` that dict is
pickled there and read back on the next call instead of training again. Then:

- every PNG of ``report.figures`` is drawn again from the very arguments the report passed
  its ``plots`` function, and timed alone (one row per figure: CPU ms, pixels, KiB);
- ``report.figures`` (every PNG) and ``report.write_report`` (the whole page: PNGs, clip
  assets, JSON) are timed whole.

``--vs`` names another version of ``pages/plots.py`` (``git show REV:acoustic_env/pages/plots.py``):
each figure, and the two wholes, are then drawn by both in turn on the same arguments, and
the table adds its CPU, pixels and the ratio now / before. CPU time (``time.process_time``:
matplotlib draws on one thread), medians of ``--repeats`` after one unrecorded warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
import sys
import tempfile
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from in_turn import cpu_ms, other_version  # noqa: E402 - after the path insert
from machine import describe  # noqa: E402


def train_results(features: str, task: str) -> dict[str, Any]:
    """Run the train job on ``features`` into a temporary directory; return the dict its report was written from."""
    import acoustic_env.jobs.train.job as job
    from acoustic_env.cli import main

    kept: dict[str, Any] = {}
    write = job.write_report

    def keep(uri: str, results: dict[str, Any]) -> str:
        kept.update(results)
        return write(uri, results)

    job.write_report = keep
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):  # stdout: the table alone
        code = main(["train", "--features", features, "--task", task, "--output", out])
    job.write_report = write
    if code:
        sys.exit(f"train failed (exit {code}): its error is above")
    return kept


def recorded_calls(results: dict[str, Any]) -> list[tuple[str, Callable[..., bytes], tuple, dict]]:
    """(file name, plots function, args, kwargs) of every PNG ``report.figures`` draws, in its order."""
    from acoustic_env.pages import plots, report

    calls: list[tuple[Callable[..., bytes], tuple, dict]] = []
    originals = {n: f for n, f in vars(plots).items() if n.endswith("_png") and not n.startswith("_")}

    def recording(fn: Callable[..., bytes]) -> Callable[..., bytes]:
        def call(*args: Any, **kwargs: Any) -> bytes:
            calls.append((fn, args, kwargs))
            return fn(*args, **kwargs)
        return call

    for name, fn in originals.items():
        setattr(plots, name, recording(fn))
    try:
        names = list(report.figures(results))
    finally:
        for name, fn in originals.items():
            setattr(plots, name, fn)
    assert len(names) == len(calls), "one plots call per PNG"
    return [(name, fn, args, kwargs) for name, (fn, args, kwargs) in zip(names, calls)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="an extract output to train on (not needed when --results exists)")
    parser.add_argument("--task", default="urban_natural")
    parser.add_argument("--results", type=Path, help="pickle of the results dict: read if it exists, else written")
    parser.add_argument("--vs", type=Path, metavar="PLOTS_PY", help="another version of pages/plots.py to time "
                        "beside this one, in turn, on the same arguments (e.g. git show HEAD~1:acoustic_env/pages/"
                        "plots.py > /tmp/plots_before.py)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image

    from acoustic_env.pages import report

    if args.results and args.results.exists():
        results = pickle.loads(args.results.read_bytes())
    else:
        if not args.features:
            parser.error("--features: give an extract output to train on (or an existing --results pickle)")
        results = train_results(args.features, args.task)
        if args.results:
            args.results.write_bytes(pickle.dumps(results))
    before = other_version(args.vs, "plots_vs") if args.vs else None
    print(f"{describe()}, {date.today()}; CPU ms, medians of {args.repeats}" + (f"; before: {args.vs}" * bool(before)))
    print("\n| figure | function | CPU ms | pixels | KiB |" + " before ms | before pixels | ratio |" * bool(before))
    print("|---|---|---:|---:|---:|" + "---:|---:|---:|" * bool(before))
    totals = [0.0] * (2 if before else 1)
    for name, fn, a, kw in recorded_calls(results):
        drawers = [fn] + ([getattr(before, fn.__name__)] if before else [])
        ms = cpu_ms([lambda d=d: d(*a, **kw) for d in drawers], args.repeats)
        cells = []
        for m, d in zip(ms, drawers):
            png = d(*a, **kw)
            w, h = Image.open(io.BytesIO(png)).size
            cells += [f"{m:.0f}", f"{w}×{h}"] + ([] if cells else [f"{len(png) / 1024:.0f}"])
        totals = [t + m for t, m in zip(totals, ms)]
        print(f"| {name} | {fn.__name__} | " + " | ".join(cells) + (f" | {ms[0] / ms[1]:.2f} |" if before else " |"),
              flush=True)
    print(_whole("(sum of the figures)", totals))

    def whole(module: ModuleType | None, write: bool) -> Callable[[], Any]:
        def run() -> None:
            drawing, report.plots = report.plots, module or report.plots
            try:
                if write:
                    with tempfile.TemporaryDirectory() as out:
                        report.write_report(out, results)
                else:
                    report.figures(results)
            finally:
                report.plots = drawing
        return run

    for label, write in (("report.figures, whole", False), ("report.write_report, whole", True)):
        runs = [whole(None, write)] + ([whole(before, write)] if before else [])
        print(_whole(label, cpu_ms(runs, args.repeats)))


def _whole(label: str, ms: list[float]) -> str:
    """A table row of one or two totals (this version, the one before) and their ratio."""
    if len(ms) == 1:
        return f"| {label} | | {ms[0]:.0f} | | |"
    return f"| {label} | | {ms[0]:.0f} | | | {ms[1]:.0f} | | {ms[0] / ms[1]:.2f} |"


if __name__ == "__main__":
    main()
