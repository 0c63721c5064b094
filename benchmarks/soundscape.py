"""The soundscape job against scikit-maad's own per-minute loop: real time per core, scaling, memory on a 24-h file.

    python benchmarks/soundscape.py [--work /tmp/acoustic-env-soundscape] [--skip maad,scaling,memory]
                                    [--cores 1,2] [--scaling-minutes 40] [--rounds 3]
                                    [--memory-hours 24]

Three measurements, printed as a Markdown section for benchmarks/RESULTS.md:

* ``maad``: the 96 forest recordings of ``../shared/data/maad_soundscapes`` (10 s each, 22 kHz) in one run, one
  after the other in this process: scikit-maad's loop as its example writes it (``sound.load``,
  ``sound.spectrogram``, ``all_temporal_alpha_indices``, ``all_spectral_alpha_indices`` with its per-bin frame),
  then the job's scorer (``jobs/soundscape/segments.py``: the same 60 indices and the per-bin ACI, ENT, EVN, BGN,
  ACT) on the same files, A B A B (two rounds each, the lower kept). The figure is audio seconds per CPU second of
  this process: the real time per core.
* ``scaling``: the job itself (``acoustic-env soundscape``'s function) on a generated deployment of
  ``--scaling-minutes`` minutes of audio (ten-minute files of the forest recordings end to end), every span on a local
  Ray of 1, 2, ... CPUs (``ray.init(num_cpus=N)`` before the job; ``--in-process-max 0``), timed from the job's call
  (Ray started, its actors not) to its return, the CPU counts interleaved in each of ``--rounds`` rounds, medians:
  audio seconds per wall second, the speed-up over one CPU, and the CPU seconds of the job's processes (this one and
  the Ray processes it started), which a machine loaded by others does not change as it changes the wall time.
* ``memory``: a generated 24-hour file (16 kHz, 16-bit mono, 2.8 GB: the forest recordings end to end), scored by
  the command in a process of its own (in-process, 1-minute segments); its peak resident memory
  (``ru_maxrss`` of the child) and its wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from machine import describe  # benchmarks/machine.py (scripts run from this folder)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "maad_soundscapes"


def recordings() -> list[Path]:
    files = sorted(DATA.glob("*.wav"))
    if len(files) != 96:
        sys.exit(f"the 96 forest recordings are not at {DATA}")
    return files


def maad_loop(files: list[Path]) -> float:
    """CPU seconds of scikit-maad's own loop over ``files``."""
    from maad import features, sound

    start = time.process_time()
    for f in files:
        s, fs = sound.load(str(f), channel="left", detrend=True)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            features.all_temporal_alpha_indices(s, fs, gain=42, sensitivity=-35, dB_threshold=3,
                                                rejectDuration=0.01)
            sxx, tn, fn, _ = sound.spectrogram(s, fs, window="hann", nperseg=1024, noverlap=512, mode="psd")
            features.all_spectral_alpha_indices(sxx, tn, fn, flim_low=[0, 1000], flim_mid=[1000, 5000],
                                                flim_hi=[5000, 8000], gain=42, sensitivity=-35,
                                                R_compatible="soundecology")
    return time.process_time() - start


def job_scorer(files: list[Path]) -> float:
    """CPU seconds of the job's scorer over ``files`` (one span each, as the job plans them)."""
    from acoustic_env.config import FeatureParams
    from acoustic_env.jobs.soundscape.segments import SegmentScorer, SegmentSpan

    score = SegmentScorer(60.0, FeatureParams())
    spans = []
    for i, f in enumerate(files):
        info = sf.info(f)
        spans.append(SegmentSpan(i, f.stem, str(f), 0, 1, info.frames, info.samplerate, "S", 0.0))
    start = time.process_time()
    for s in spans:
        score(s)
    return time.process_time() - start


def long_files(work: Path, minutes: float, file_minutes: float, sr: int | None = None) -> list[Path]:
    """Files of ``file_minutes`` minutes (the forest recordings end to end, resampled to ``sr`` if given), named as
    a Song Meter names them, ``minutes`` in all; written once."""
    work.mkdir(parents=True, exist_ok=True)
    source = [sf.read(f, dtype="int16")[0] for f in recordings()]
    rate = sf.info(recordings()[0]).samplerate
    out, t0 = [], dt.datetime(2019, 5, 22)
    for k in range(max(1, round(minutes / file_minutes))):
        path = work / f"GEN_{(t0 + dt.timedelta(minutes=k * file_minutes)).strftime('%Y%m%d_%H%M%S')}.wav"
        out.append(path)
        if path.exists():
            continue
        frames = round(file_minutes * 60 * (sr or rate))
        with sf.SoundFile(path, "w", sr or rate, 1, "PCM_16") as fh:
            written, i = 0, 0
            while written < frames:
                block = source[i % len(source)]
                if sr and sr != rate:
                    import soxr

                    block = soxr.resample(block.astype(np.float32) / 32768, rate, sr)
                    block = np.round(block * 32767).astype(np.int16)
                block = block[: frames - written]
                fh.write(block)
                written, i = written + len(block), i + 1
    return out


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of this process and each of its descendants (a local Ray's raylet, workers and
    actors are), by pid."""
    import psutil

    out = {}
    for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:  # gone meanwhile
            pass
    return out


def scaling(work: Path, cores: list[int], minutes: float, rounds: int) -> list[tuple[int, list[float], list[float]]]:
    """(CPUs, wall seconds per round, CPU seconds per round) of the job on a local Ray of each CPU count, the counts
    interleaved within each round (1, 2, 1, 2, ...) so that a change in the machine's load falls on all of them.

    The CPU seconds are those of this process and of every Ray process it started, from the job's call to its
    return (Ray started before, its actors not): what the job cost, whatever else the machine runs."""
    import ray

    from acoustic_env.config import from_dict
    from acoustic_env.config.soundscape import SoundscapeConfig
    from acoustic_env.jobs.soundscape.job import soundscape

    long_files(work / "deployment", minutes, 10.0)
    walls: dict[int, list[float]] = {n: [] for n in cores}
    cpus: dict[int, list[float]] = {n: [] for n in cores}
    for _ in range(rounds):
        for n in cores:
            ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
            cfg = from_dict(SoundscapeConfig, {"inputs": [str(work / "deployment")],
                                               "output": str(work / f"out-{n}"), "in_process_max": 0,
                                               "span_segments": 5})
            subprocess.run(["rm", "-rf", cfg.output], check=True)
            before, start = tree_cpu(), time.perf_counter()
            soundscape(cfg)
            walls[n].append(time.perf_counter() - start)
            after = tree_cpu()
            cpus[n].append(sum(t - before.get(pid, 0.0) for pid, t in after.items()))
            ray.shutdown()
    return [(n, walls[n], cpus[n]) for n in cores]


def memory(work: Path, hours: float) -> tuple[float, float, float]:
    """(peak resident MB, wall seconds, file GB) of the command on one ``hours``-long 16 kHz file."""
    [path] = long_files(work / "day", hours * 60, hours * 60, sr=16000)
    out = work / "day-out"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "acoustic_env.cli", "soundscape", str(path), "--output", str(out),
                    "--in-process-max", "100000"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall, path.stat().st_size / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/acoustic-env-soundscape"))
    ap.add_argument("--skip", default="")
    ap.add_argument("--cores", default=f"1,{os.cpu_count()}")
    ap.add_argument("--scaling-minutes", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=3, help="scaling: rounds, the CPU counts interleaved in each")
    ap.add_argument("--memory-hours", type=float, default=24.0)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"## Soundscapes: the job against scikit-maad's loop (soundscape.py)\n\n{describe()}; "
          f"`python benchmarks/soundscape.py {' '.join(sys.argv[1:])}`, {dt.date.today()}\n")
    if "maad" not in skip:
        files = recordings()
        audio = sum(sf.info(f).duration for f in files)
        maad, ours = [], []
        for _ in range(2):  # A B A B
            maad.append(maad_loop(files))
            ours.append(job_scorer(files))
        m, o = min(maad), min(ours)
        print(f"- 96 forest recordings ({audio:.0f} s of audio), one process: scikit-maad's loop {m:.1f} CPU-s "
              f"({audio / m:.0f}x real time per core), the job's scorer {o:.1f} CPU-s ({audio / o:.0f}x), "
              f"{m / o:.1f}x scikit-maad (rounds: maad {', '.join(f'{x:.1f}' for x in maad)}; job "
              f"{', '.join(f'{x:.1f}' for x in ours)})")
    if "scaling" not in skip:
        load = os.getloadavg()
        rows = scaling(args.work, [int(c) for c in args.cores.split(",")], args.scaling_minutes, args.rounds)
        audio = args.scaling_minutes * 60
        one = float(np.median(rows[0][1]))
        print(f"- the job on Ray, {args.scaling_minutes:g} min of audio, the CPU counts interleaved over "
              f"{args.rounds} round(s), medians (load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after):")
        for n, walls, cpus in rows:
            wall, cpu = float(np.median(walls)), float(np.median(cpus))
            print(f"  - {n} CPU(s): {wall:.1f} s wall ({audio / wall:.0f}x real time, {one / wall:.2f}x one CPU), "
                  f"{cpu:.1f} CPU-s of the job's processes ({audio / cpu:.0f}x real time per CPU-s); rounds "
                  f"{', '.join(f'{w:.1f}' for w in walls)} s")
    if "memory" not in skip:
        peak, wall, size = memory(args.work, args.memory_hours)
        print(f"- one {args.memory_hours:g}-hour file (16 kHz, {size:.1f} GB), 1-minute segments in one process: "
              f"peak resident memory {peak:.0f} MB, {wall:.0f} s ({args.memory_hours * 3600 / wall:.0f}x real time)")


if __name__ == "__main__":
    main()
