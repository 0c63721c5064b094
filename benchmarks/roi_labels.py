"""The ROI regions of the torch indices on a device: labelling on the card against scipy's on the host.

    python benchmarks/roi_labels.py --device cuda --batches 64,256 --write   # on a GPU node
    python benchmarks/roi_labels.py --device cpu --batches 4                 # anywhere

``region_of_interest_index`` needs the 8-connected regions of each clip's thresholded
spectrogram. On a device the torch path labels them on the card (``_label_hooks``: a
few rounds of a 3×3 maximum, hooking and pointer jumping); the alternative is scipy's
``ndimage.label`` per clip on the host, with the mask copied off the card and the
labels back. For each batch size (generated 10-s soundscapes, as gpu_features.py), the
median of 3 timed runs after a warm-up: both labellings (and whether they find the same
regions), the rounds the card needed, the whole ``indices_and_psd`` per clip, and its
parts (temporal indices, PSD, spectral indices, of which the ROI index, the host's
NBPEAKS and the per-bin median). Prints a markdown section; ``--write`` puts it into
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch
from extract_stages import write_section  # benchmarks/extract_stages.py, beside this script
from gpu_features import RESULTS, SR, soundscapes
from machine import describe

from acoustic_env.config import FeatureParams
from acoustic_env.features.torch import indices

HEADING = "## ROI labelling on a device: the card against scipy on the host (roi_labels.py)"


def timed(device: str, f: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """f's result and its median wall time over 3 runs after a warm-up, in ms (the device synchronised)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    f(*args)
    sync()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = f(*args)
        sync()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times) * 1000


def host_label(active: torch.Tensor) -> torch.Tensor:
    """scipy's labelling on the host (``_label`` of a CPU tensor), the labels copied back to the mask's device."""
    return indices._label(active.cpu()).to(active.device)


def same_regions(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labellings of [clip, f, t] make the same regions: each label meets one label of the other."""
    clip = torch.arange(a.shape[0], device=a.device)[:, None, None] * (a[0].numel() + 1)
    pairs = torch.unique(torch.stack([(a + clip).flatten(), (b + clip).flatten()]), dim=1)
    return bool(pairs.shape[1] == torch.unique(pairs[0]).numel() == torch.unique(pairs[1]).numel())


def measure(device: str, batch: int, clips: np.ndarray, params: FeatureParams) -> list[str]:
    x = torch.as_tensor(clips[:batch], device=device).to(torch.float64)
    sxx, tn, fn = indices.hann_psd(x, SR, params.maad_nperseg, params.maad_noverlap)
    active = indices.roi_levels(sxx) > indices._ROI["low_level"]
    rounds = [0]
    neighbourhood = indices._max3x3  # called once a round

    def counted(labels: torch.Tensor) -> torch.Tensor:
        rounds[0] += 1
        return neighbourhood(labels)

    indices._max3x3 = counted
    try:
        card, t_card = timed(device, indices._label_hooks, active)
    finally:
        indices._max3x3 = neighbourhood
    host, t_host = timed(device, host_label, active)
    _, t_all = timed(device, indices.indices_and_psd, x, SR, params)
    parts = {
        "temporal": (indices.temporal_indices, x, SR, params),
        "PSD": (lambda: indices.hann_psd(x, SR, params.maad_nperseg, params.maad_noverlap)[0],),
        "spectral": (indices.spectral_indices, sxx, tn, fn, params),
        "of which ROI": (indices._roi_index, sxx, tn, fn),
        "NBPEAKS (host)": (lambda: [indices.fast._number_of_peaks(a, fn) for a in sxx.mean(-1).cpu().numpy()],),
        "per-bin median": (indices._median, sxx),
    }
    cost = {name: timed(device, *call)[1] for name, call in parts.items()}
    return [f"| {batch} | {t_card:.1f} ({rounds[0] // 4} rounds) | {t_host:.1f} | {same_regions(card, host)} "
            f"| {t_all / batch:.2f} | " + " | ".join(f"{v:.1f}" for v in cost.values()) + " |",
            " | ".join(cost)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--batches", default="64,256", help="comma list of batch sizes (clips)")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.name}")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    params = FeatureParams()
    clips = np.stack(soundscapes(max(batches), 10.0))
    rows = [measure(args.device, b, clips, params) for b in batches]
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    text = "\n".join([
        HEADING, "",
        f"Command: `python benchmarks/roi_labels.py --device {args.device} --batches {args.batches}`  ",
        f"Machine: {describe()}, torch {torch.__version__}, device {args.device} ({where}); {dt.date.today()}", "",
        "Medians of 3 runs after a warm-up, ms a batch of generated 10-s soundscapes unless per clip.", "",
        "| clips | card labelling ms | scipy on the host ms (copies included) | same regions | indices_and_psd ms/clip "
        "| " + rows[0][1] + " ms |",
        "|---:|---|---:|---|---:|" + "---:|" * len(rows[0][1].split(" | ")),
        *(r[0] for r in rows), ""])
    print(text)
    if args.write:
        write_section(text, RESULTS, HEADING)


if __name__ == "__main__":
    main()
