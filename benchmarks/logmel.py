"""The log-mel front end's cost: CPU per 10-s clip (numpy, torch on CPU), bytes per row, an actor's peak memory.

    python benchmarks/logmel.py                       # 16 clips x 5 repeats, 96 for the table, 64 for the actor
    python benchmarks/logmel.py --clips 8 --table-clips 32 --rss-clips 8

* **CPU.** ``features.logmel.logmel`` (numpy/scipy) and ``features.torch.logmel.logmel`` on CPU tensors, one
  clip at a time and 16 clips as one tensor (as the device stage batches them): CPU seconds of this process
  (``time.process_time``), pinned to one core with one thread, the median of ``--repeats`` runs per clip,
  averaged over the clips.
* **Table size.** The images of ``--table-clips`` clips in the ``logmel`` column (``table.encode_images``: 8-bit
  codes with a dB scale per row) written as the extract writes a part (``storage.write_parquet``: zstd), with
  ``clip_id`` beside it: the column's compressed bytes per row from the Parquet footer, and so MB per 10,000
  clips; next to what float16 and float32 images would take uncompressed.
* **Memory.** A fresh process runs the CPU feature actor's work (``FeatureWriterStage``: decode, the CPU
  features, the Parquet parts) on ``--rss-clips`` clips, once with the default features and once with
  ``features.logmel`` too: its peak resident memory (``ru_maxrss``), and the bytes per row of the parts it
  wrote (every column), for each.

The clips are real 10-s field recordings (../shared/data/maad_soundscapes) decoded to 16 kHz and RMS-normalised
as the extract does, or generated soundscapes without them (``extract_stages.clip_files``). Prints a markdown
section headed by the command, the machine and the date.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from extract_stages import clip_files, machine  # noqa: E402 - benchmarks/, beside this script

from acoustic_env.audio.decode import decode_clip  # noqa: E402
from acoustic_env.config import DecodeParams  # noqa: E402
from acoustic_env.features.logmel import COLUMN, LOGMEL, logmel  # noqa: E402
from acoustic_env.table import encode_images  # noqa: E402

BATCH = 16  # clips per tensor in the batched torch timing


def cpu_seconds(fn, repeats: int) -> float:
    """The median CPU seconds of ``fn()`` over ``repeats`` runs (one warm-up run first)."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        runs.append(time.process_time() - t0)
    return float(np.median(runs))


def cpu_costs(clips: list[np.ndarray], repeats: int) -> dict[str, float]:
    """ms of CPU per clip: numpy, torch one clip at a time, torch ``BATCH`` clips as one tensor."""
    import torch

    from acoustic_env.features.torch.logmel import logmel as torch_logmel

    torch.set_num_threads(1)
    tensors = [torch.from_numpy(c)[None] for c in clips]
    n = min(len(c) for c in clips)
    batch = torch.from_numpy(np.stack([clips[i % len(clips)][:n] for i in range(BATCH)]))
    return {"numpy": 1000 * float(np.mean([cpu_seconds(lambda c=c: logmel(c), repeats) for c in clips])),
            "torch, one clip": 1000 * float(np.mean([cpu_seconds(lambda t=t: torch_logmel(t), repeats)
                                                     for t in tensors])),
            f"torch, {BATCH} clips a tensor": 1000 * cpu_seconds(lambda: torch_logmel(batch), repeats) / BATCH}


def table_size(clips: list[np.ndarray]) -> dict[str, float]:
    """Bytes per row of the ``logmel`` column in a zstd Parquet part, and the uncompressed alternatives."""
    images = [logmel(c) for c in clips]
    table = pa.table({"clip_id": [f"clip{i:05d}" for i in range(len(images))], COLUMN: encode_images(images)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")  # as storage.write_parquet writes every part
    meta = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
    column = sum(meta.row_group(g).column(c).total_compressed_size for g in range(meta.num_row_groups)
                 for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema.startswith(COLUMN))
    cells = float(np.mean([im.size for im in images]))
    return {"rows": len(images), "frames": float(np.mean([im.shape[1] for im in images])),
            "zstd_bytes_per_row": column / len(images), "file_bytes_per_row": len(buf.getvalue()) / len(images),
            "uint8_bytes_per_row": cells, "float16_bytes_per_row": 2 * cells, "float32_bytes_per_row": 4 * cells}


def actor_run(files: list[Path], logmel_on: bool, workdir: Path) -> dict[str, float]:
    """A fresh process doing a CPU feature actor's work on ``files`` (``--child``): its peak RSS (MB), and the
    bytes per row of the features/ parts it wrote (every column, as the extract writes them)."""
    out = workdir / ("on" if logmel_on else "off")
    cmd = [sys.executable, __file__, "--child", str(out), *(["--logmel"] if logmel_on else []), *map(str, files)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    parts = list((out / "features").glob("*.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return {**json.loads(done.stdout.strip().splitlines()[-1]),
            "table_bytes_per_row": sum(p.stat().st_size for p in parts) / rows}


def child(output: str, logmel_on: bool, files: list[str]) -> None:
    """The actor's work in this process: ``FeatureWriterStage`` over the clips; prints the peak RSS as JSON."""
    from acoustic_env.audio.rows import row_schema
    from acoustic_env.audio.stages import FeatureWriterStage, image_columns, stages, table_metadata, vector_columns
    from acoustic_env.config import ExtractConfig, from_dict

    cfg = from_dict(ExtractConfig, {"manifest": "m.csv", "output": output, "features": {"logmel": logmel_on}})
    batch = pa.table({"clip_id": [Path(f).stem for f in files], "uri": files})
    schema = row_schema(batch.schema, vector_columns(cfg), stages(cfg), (), image_columns(cfg))
    stage = FeatureWriterStage(cfg, schema, output, "bench", table_metadata(cfg, "bench", {}))
    summaries = list(stage(batch))
    assert sum(s["n_ok"][0].as_py() for s in summaries) == len(files), summaries
    print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def markdown(costs: dict[str, float], size: dict[str, float], runs: dict[str, dict[str, float]],
             args: argparse.Namespace,
             source: str, host: str) -> str:
    per_10k = 10_000 * size["zstd_bytes_per_row"] / 1e6
    lines = ["## The log-mel front end (logmel.py)", "",
             f"`{shlex.join(['python', f'benchmarks/{Path(__file__).name}', *sys.argv[1:]])}` on {host}, "
             f"{dt.date.today().isoformat()}; {source}.", "",
             f"CPU per 10-s clip (one core, one thread; median of {args.repeats} runs, mean over {args.clips} clips):",
             "", "| path | ms of CPU per clip |", "|---|---|",
             *(f"| {name} | {ms:.1f} |" for name, ms in costs.items()), "",
             f"Table size ({size['rows']} clips, {size['frames']:.0f} frames each: {LOGMEL.bands} × {size['frames']:.0f} "
             "cells):",
             "", "| storage | bytes per row | per 10,000 clips |", "|---|---|---|",
             f"| `logmel` column, 8-bit codes, zstd Parquet (as written) | {size['zstd_bytes_per_row']:,.0f} | "
             f"{per_10k:,.0f} MB |",
             *(f"| {name}, uncompressed | {size[key]:,.0f} | {10_000 * size[key] / 1e6:,.0f} MB |"
               for name, key in (("uint8", "uint8_bytes_per_row"), ("float16", "float16_bytes_per_row"),
                                 ("float32", "float32_bytes_per_row")))]
    if runs:
        off, on = runs["off"], runs["on"]
        lines += ["", f"A CPU feature actor's work in a fresh process ({args.rss_clips} clips, `FeatureWriterStage`):",
                  "", "| features | peak RSS | features/ bytes per row (every column) | per 10,000 clips |",
                  "|---|---|---|---|",
                  *(f"| {name} | {r['max_rss_mb']:.0f} MB | {r['table_bytes_per_row']:,.0f} | "
                    f"{10_000 * r['table_bytes_per_row'] / 1e6:,.0f} MB |"
                    for name, r in (("default", off), ("default + `--features-logmel`", on)))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16, help="clips for the CPU costs")
    ap.add_argument("--repeats", type=int, default=5, help="runs per clip and path (median)")
    ap.add_argument("--table-clips", type=int, default=96, help="clips for the table size")
    ap.add_argument("--rss-clips", type=int, default=64, help="clips for the actor's run: one 64-row part, as the "
                                                                 "extract writes them (0: not run)")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--logmel", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.logmel, args.files)
        return
    os.sched_setaffinity(0, {args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))})
    host = machine()
    with tempfile.TemporaryDirectory() as tmp:
        files, source = clip_files(max(args.clips, args.table_clips, args.rss_clips), Path(tmp))
        clips = [decode_clip(str(f), DecodeParams()).audio for f in files]
        costs = cpu_costs(clips[: args.clips], args.repeats)
        size = table_size(clips[: args.table_clips])
        runs = ({"off": actor_run(files[: args.rss_clips], False, Path(tmp)),
                 "on": actor_run(files[: args.rss_clips], True, Path(tmp))} if args.rss_clips else {})
    print(markdown(costs, size, runs, args, source, host))


if __name__ == "__main__":
    main()
