"""How many nodes of a shape, how long, and how many core- and GPU-hours an extract needs.

From the per-clip costs measured in benchmarks/RESULTS.md (declared once, below), for 10-s
clips (AudioSet's segments), scaled by the audio's length: the clip list's start and end where it
gives them, else 10 s a clip, which the line then says. The estimate is the work divided over the
nodes, whichever of the cores and the GPUs takes longer setting the wall time. On nodes without a
GPU the cores decode, compute the features and run the embedders. On nodes with GPUs the extract
runs its device stage: the cores decode, and the card computes every feature of raw, fg and bg and
the embedders (an embedder without a GPU path, BirdNET, stays on the cores). It leaves out the
≈ 30 s fixed start-up of a run and reading the audio (free inside one region).
"""

from __future__ import annotations

import math
from typing import Any

#: CPU-seconds per 10-s clip for decode, the CPU features and writing, end to end: 16 cores ran
#: ≈ 42 clips/s. benchmarks/RESULTS.md, "Extract with CPU features and the three embedders on one
#: GPU (pipeline.py)".
CPU_S_PER_CLIP = 16 / 42
#: CPU-seconds per 10-s clip of each embedder on CPU (2 cores, load ≈ 2; BirdNET: one thread, 7.46 clips/s, load
#: 3.6). benchmarks/RESULTS.md, "Embedders: clips/s on CPU (embedders.py)".
EMBEDDER_CPU_S = {"vggish": 0.49, "yamnet": 0.47, "panns": 1.06, "birdnet": 1 / 7.46}
#: The device stage on one H200 node, 4,096 10-s clips (benchmarks/RESULTS.md, "Extract on one GPU node", the run
#: record's seconds per stage): CPU-seconds per clip of decode (93.5 CPU-s in all), card-seconds per clip of the
#: features of raw, fg and bg (separation 1.8, indices 10.2, spectral 1.1, MPS 2.2 s), and card-seconds per clip and
#: signal of each embedder (2.8, 12.1 and 4.8 s over the three signals).
DEVICE_CPU_S_PER_CLIP = 93.5 / 4096
DEVICE_FEATURES_GPU_S = 15.3 / 4096
EMBEDDER_GPU_S = {"vggish": 2.8 / 4096 / 3, "yamnet": 12.1 / 4096 / 3, "panns": 4.8 / 4096 / 3}


#: The length of a clip whose length the clip list does not give (AudioSet's segments, most datasets' clips).
ASSUMED_CLIP_S = 10.0


def size(clips: int, embedders: tuple[str, ...] | list[str], node_cpus: int, node_gpus: int,
         hours: float, embed_signals: int = 1, known: int = 0, known_s: float = 0.0) -> dict[str, Any]:
    """Nodes of ``node_cpus`` CPUs and ``node_gpus`` GPUs for ``clips`` clips in ``hours``; the figures and lines.

    ``embed_signals``: the signals each embedder embeds (``--embed-signals``), each one pass over every clip.
    ``known`` of the clips last ``known_s`` seconds in all (the list's start and end); the others are assumed
    ``ASSUMED_CLIP_S`` long, and the line says so. The costs scale with the audio's length.
    """
    tens = known_s / 10 + (clips - known) * ASSUMED_CLIP_S / 10  # the work in 10-s clips, the costs' unit
    cpu_s = tens * (DEVICE_CPU_S_PER_CLIP if node_gpus else CPU_S_PER_CLIP)
    gpu_s = tens * DEVICE_FEATURES_GPU_S if node_gpus else 0.0
    unmeasured = [e for e in embedders if e not in EMBEDDER_CPU_S]
    for name in (e for e in embedders if e in EMBEDDER_CPU_S):
        if node_gpus and name in EMBEDDER_GPU_S:
            gpu_s += tens * embed_signals * EMBEDDER_GPU_S[name]
        else:
            cpu_s += tens * embed_signals * EMBEDDER_CPU_S[name]
    budget_s = hours * 3600
    nodes = max(1, math.ceil(cpu_s / (node_cpus * budget_s)),
                math.ceil(gpu_s / (node_gpus * budget_s)) if node_gpus else 1)
    wall_s = max(cpu_s / (nodes * node_cpus), gpu_s / (nodes * node_gpus) if node_gpus else 0.0)
    shape = f"{node_cpus} CPUs" + (f" + {node_gpus} GPU{'s' if node_gpus > 1 else ''}" if node_gpus else "")
    lines = [f"  sizing ({_lengths(clips, known, known_s)}; costs measured in benchmarks/RESULTS.md): "
             f"{cpu_s / 3600:,.1f} core-hours" + (f" and {gpu_s / 3600:,.2f} GPU-hours" if node_gpus else "")
             + f" of work; {nodes} node(s) of {shape} for about {wall_s / 3600:,.1f} h (target {hours:g} h)"]
    if unmeasured:
        lines.append(f"  sizing leaves out {', '.join(unmeasured)}: no measured cost")
    return {"clips": clips, "core_hours": cpu_s / 3600, "gpu_hours": gpu_s / 3600, "nodes": nodes,
            "wall_hours": wall_s / 3600, "lines": lines}


def _lengths(clips: int, known: int, known_s: float) -> str:
    """How long the clips sized are, and how that is known."""
    audio = f"{known_s / 3600:,.1f} h" if known_s >= 3600 else f"{known_s:,.0f} s"
    given = f"{audio} of audio by the list's start and end"
    assumed = f"assumed {ASSUMED_CLIP_S:g} s each, as the list gives no start and end"
    if not known:
        return f"{clips:,} clips, {assumed}"
    if known == clips:
        return f"{clips:,} clips, {given}"
    return f"{clips:,} clips: {known:,} with {given}, {clips - known:,} {assumed}"
