"""CPU cost of the feature stages, reference vs fast, per 10-s clip; and end-to-end clips/s.

    python benchmarks/extract_stages.py                          # 8 clips x 5 repeats + a 16-clip pipeline run
    python benchmarks/extract_stages.py --repeats 9 --pipeline-clips 0 --write
    python benchmarks/extract_stages.py --clips 4 --pipeline-clips 0 --mps-grid 101x77   # the study's MPS grid

Stage costs are CPU seconds of this process (``time.process_time``, so work on
any helper thread counts), pinned to one core, the median over ``--repeats``
runs of each clip, then averaged over clips. The reference and fast runs of a
clip alternate within each repeat, so both see the same machine load. The
clips are real 10-s field recordings (../shared/data/maad_soundscapes, decoded
to 16 kHz and RMS-normalised like the pipeline does) or, without them,
generated soundscapes. The pipeline part runs ``acoustic_env.jobs.extract.extract``
with local Ray on the same clips, once per implementation, and reports
clips/s of wall time and the CPU seconds the run record attributes to each stage.

Prints a markdown section headed by the command, the machine and the date;
``--write`` also puts it into benchmarks/RESULTS.md (replacing this script's
previous section, leaving the others alone). ``--mps-grid WFxWT`` sets the MPS grid
(``features.mps_n_wf`` × ``mps_n_wt``; default 16x33) for every run, so two runs give
the cost of another grid: the study's 101x77 against the default.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import soundfile as sf  # noqa: E402
from machine import describe  # noqa: E402 - benchmarks/machine.py, beside this script

from acoustic_env.audio.decode import decode_clip  # noqa: E402
from acoustic_env.config import DecodeParams, ExtractConfig, FeatureParams, from_dict  # noqa: E402
from acoustic_env.features import implementation, separation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO.parent / "shared" / "data" / "maad_soundscapes"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
HEADING = "## CPU feature stages: reference vs fast (extract_stages.py)"
SIGNALS = ("raw", "fg", "bg")
IMPLS = ("reference", "fast")


def machine() -> str:
    return (f"{describe()} (this run pinned to {sorted(os.sched_getaffinity(0))}), "
            f"{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}")


def clip_files(n: int, workdir: Path) -> tuple[list[Path], str]:
    """n 10-s audio files: real recordings when ../shared has them, else generated soundscapes."""
    if RECORDINGS.is_dir():
        files = sorted(RECORDINGS.glob("*.wav"))
        step = max(1, len(files) // n)
        return files[::step][:n], f"real field recordings ({RECORDINGS.name}, 22.05 kHz WAV)"
    from acoustic_env.demo.synth import make_clip

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        audio, _ = make_clip(rng, ("urban", "natural")[i % 2], 10.0, 16000, 1)
        path = workdir / f"clip{i:03d}.wav"
        sf.write(path, audio, 16000, subtype="PCM_16")
        out.append(path)
    return out, "generated soundscapes (acoustic_env.demo.synth, 16 kHz WAV)"


def cpu_ms(fn, *args) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn(*args)
    return (time.process_time() - t0) * 1e3, out


def one_run(audio: np.ndarray, sr: int, params: FeatureParams) -> dict[str, float]:
    """CPU ms of every stage of one clip under params.impl (the fast spectral stage reuses the indices' STFT)."""
    signal_features = implementation(params.impl)
    ms: dict[str, float] = {}
    ms["separate"], (fg, bg) = cpu_ms(separation(params.impl), audio, sr, params)
    for name, x in zip(SIGNALS, (audio, fg, bg)):
        t0 = time.process_time()
        for stage, _ in signal_features(x, sr, params):
            t1 = time.process_time()
            ms[f"{stage} {name}"] = (t1 - t0) * 1e3
            t0 = t1
    return ms


def stage_costs(files: list[Path], repeats: int, grid: tuple[int, int]) -> dict[str, dict[str, float]]:
    """{impl: {stage: mean over clips of the median over repeats, in ms}}, with the MPS on ``grid`` (wf, wt)."""
    dparams = DecodeParams()
    params = {impl: FeatureParams(impl=impl, mps_n_wf=grid[0], mps_n_wt=grid[1]) for impl in IMPLS}
    per_clip: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLS}
    for i, path in enumerate(files):
        decode = [cpu_ms(decode_clip, str(path), dparams) for _ in range(repeats)]
        audio = decode[0][1].audio
        runs: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLS}
        for impl in IMPLS:  # warm-up: imports, caches
            one_run(audio, dparams.sample_rate, params[impl])
        for _ in range(repeats):
            for impl in IMPLS:
                runs[impl].append(one_run(audio, dparams.sample_rate, params[impl]))
        for impl in IMPLS:
            med = {k: float(np.median([r[k] for r in runs[impl]])) for k in runs[impl][0]}
            med["decode"] = float(np.median([d[0] for d in decode]))
            per_clip[impl].append(med)
        ref_ms, fast_ms = (sum(v for k, v in per_clip[impl][-1].items() if k != "decode") for impl in IMPLS)
        print(f"  clip {i + 1}/{len(files)}: features: reference {ref_ms:.0f} ms, fast {fast_ms:.1f} ms",
              file=sys.stderr)
    return {impl: {k: float(np.mean([c[k] for c in per_clip[impl]])) for k in per_clip[impl][0]} for impl in IMPLS}


def pipeline_runs(files: list[Path], workdir: Path, grid: tuple[int, int]) -> dict[str, dict[str, float]]:
    """Wall time, clips/s and run-record CPU seconds of extract() per implementation (one Ray session)."""
    from acoustic_env.jobs.extract import extract

    clips = workdir / "clips"
    clips.mkdir()
    for path in files:
        (clips / path.name).symlink_to(path.resolve())
    def run(impl: str, tag: str) -> dict[str, float]:
        cfg = from_dict(ExtractConfig, {"manifest": str(clips), "output": str(workdir / f"out-{tag}"),
                                        "progress": False,
                                        "features": {"impl": impl, "mps_n_wf": grid[0], "mps_n_wt": grid[1]}})
        t0 = time.perf_counter()
        result = extract(cfg)
        wall = time.perf_counter() - t0
        assert result.counts["ok"] == len(files), result.counts
        return {"wall_s": wall, "clips_per_s": len(files) / wall,
                **{f"cpu_{k}": v for k, v in result.record["cpu_s"].items()}}

    run("fast", "warm-up")  # starts Ray and its workers; not reported
    out = {impl: run(impl, impl) for impl in IMPLS}
    return out


def markdown(costs: dict[str, dict[str, float]], pipe: dict[str, dict[str, float]] | None, n_clips: int,
             n_pipeline: int, repeats: int, source: str, host: str, grid: tuple[int, int] = (16, 33)) -> str:
    ref, fast = costs["reference"], costs["fast"]
    per_signal = ("indices", "spectral", "mps")
    stages = ["decode", "separate"] + [f"{stage} {s}" for stage in per_signal for s in SIGNALS]
    lines = [HEADING, "",
             f"`{shlex.join(['python', 'benchmarks/extract_stages.py', *sys.argv[1:]])}`, "
             f"{dt.date.today().isoformat()}  ",
             f"{host}  ",
             f"{n_clips} clips of 10 s: {source}; CPU ms per clip (process CPU time, median of {repeats} repeats, "
             f"mean over clips; reference and fast alternate within each repeat); MPS grid {grid[0]}x{grid[1]} "
             f"({grid[0] * grid[1]} values per signal).", "",
             "| stage | reference ms | fast ms | ratio |", "|---|---:|---:|---:|"]
    for s in stages:
        lines.append(f"| {s} | {ref[s]:.1f} | {fast[s]:.1f} | {ref[s] / fast[s]:.1f}x |")
    for label, keys in (*((f"{stage} (raw+fg+bg)", [f"{stage} {s}" for s in SIGNALS]) for stage in per_signal),
                        ("**features: separate + raw + fg + bg**", stages[1:]),
                        ("features + decode", stages)):
        r, f = sum(ref[k] for k in keys), sum(fast[k] for k in keys)
        lines.append(f"| {label} | {r:.1f} | {f:.1f} | {r / f:.1f}x |")
    if pipe:
        lines += ["", f"End to end, `acoustic_env.jobs.extract.extract` with local Ray on {n_pipeline} of these clips "
                      "(decode, features, write; no embedders; all cores, shared with whatever else runs; "
                      "a warm-up run first starts Ray):", "",
                  "| impl | wall s | clips/s | run-record CPU ms per clip: decode / separate / indices / spectral "
                  "/ mps |",
                  "|---|---:|---:|---|"]
        for impl, p in pipe.items():
            per = [f"{1e3 * p[f'cpu_{k}'] / n_pipeline:.0f}" for k in ("decode", "separate", *per_signal)]
            lines.append(f"| {impl} | {p['wall_s']:.1f} | {p['clips_per_s']:.2f} | {' / '.join(per)} |")
        speedup = pipe["fast"]["clips_per_s"] / pipe["reference"]["clips_per_s"]
        lines += ["", f"clips/s, fast over reference: {speedup:.1f}x. (The reference's separate includes importing "
                      "noisereduce, hence torch, once per actor.)"]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = RESULTS, heading: str = HEADING) -> None:
    """Put a script's section (this one's by default) into RESULTS.md, replacing its previous one and keeping the rest."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if heading in old:
        start = old.index(heading)
        nxt = old.find("\n## ", start + len(heading))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "")
    path.write_text(old.rstrip("\n") + "\n\n" + text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips for the per-stage costs")
    ap.add_argument("--repeats", type=int, default=5, help="runs per clip and implementation (median)")
    ap.add_argument("--pipeline-clips", type=int, default=16, help="clips for the end-to-end runs (0: skip)")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one allowed)")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.relative_to(REPO)}")
    ap.add_argument("--mps-grid", default="16x33", help="MPS grid points, wf x wt (the study's: 101x77)")
    args = ap.parse_args(argv)
    try:
        grid = tuple(int(v) for v in args.mps_grid.lower().split("x"))
        assert len(grid) == 2
    except (ValueError, AssertionError):
        ap.error(f"--mps-grid: expected WFxWT such as 101x77, got {args.mps_grid!r}")
    os.sched_setaffinity(0, {args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))})
    host = machine()
    with tempfile.TemporaryDirectory() as tmp:
        files, source = clip_files(max(args.clips, args.pipeline_clips), Path(tmp))
        costs = stage_costs(files[: args.clips], args.repeats, grid)
        pipe = None
        if args.pipeline_clips:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))  # Ray gets the whole machine
            pipe = pipeline_runs(files[: args.pipeline_clips], Path(tmp), grid)
    text = markdown(costs, pipe, args.clips, args.pipeline_clips, args.repeats, source, host, grid)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
