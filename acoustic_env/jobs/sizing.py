"""How many nodes of a shape, how long, and how many core- and GPU-hours an extract needs.

From the per-clip costs measured in benchmarks/RESULTS.md (declared once, below), for 10-s
clips (AudioSet's segments; costs scale with the audio's length). The estimate is the work
divided over the nodes: the CPU features (and embedders without a GPU) over the cores, the
embedders over the GPUs, whichever takes longer sets the wall time. It leaves out the
≈ 30 s fixed start-up of a run and reading the audio (free inside one region).
"""

from __future__ import annotations

import math
from typing import Any

#: CPU-seconds per 10-s clip for decode, the CPU features and writing, end to end: 16 cores ran
#: ≈ 42 clips/s. benchmarks/RESULTS.md, "Extract with CPU features and the three embedders on one
#: GPU (pipeline.py)".
CPU_S_PER_CLIP = 16 / 42
#: CPU-seconds per 10-s clip of each embedder on CPU (2 cores, load ≈ 2). benchmarks/RESULTS.md,
#: "Embedders: clips/s on CPU (embedders.py)".
EMBEDDER_CPU_S = {"vggish": 0.49, "yamnet": 0.47, "panns": 1.06}
#: GPU-seconds per 10-s clip of each embedder on one H100 (fp32: 1601, 1388, 1671 clips/s).
#: benchmarks/RESULTS.md, "Embedders on a GPU: clips/s, GPU memory, bf16 vs fp32 (embedders.py)".
EMBEDDER_GPU_S = {"vggish": 1 / 1601, "yamnet": 1 / 1388, "panns": 1 / 1671}


def size(clips: int, embedders: tuple[str, ...] | list[str], node_cpus: int, node_gpus: int,
         hours: float, embed_signals: int = 1) -> dict[str, Any]:
    """Nodes of ``node_cpus`` CPUs and ``node_gpus`` GPUs for ``clips`` clips in ``hours``; the figures and lines.

    ``embed_signals``: the signals each embedder embeds (``--embed-signals``), each one pass over every clip.
    """
    cpu_s = clips * CPU_S_PER_CLIP
    gpu_s = 0.0
    unmeasured = [e for e in embedders if e not in EMBEDDER_CPU_S]
    for name in (e for e in embedders if e in EMBEDDER_CPU_S):
        if node_gpus:
            gpu_s += clips * embed_signals * EMBEDDER_GPU_S[name]
        else:
            cpu_s += clips * embed_signals * EMBEDDER_CPU_S[name]
    budget_s = hours * 3600
    nodes = max(1, math.ceil(cpu_s / (node_cpus * budget_s)),
                math.ceil(gpu_s / (node_gpus * budget_s)) if node_gpus else 1)
    wall_s = max(cpu_s / (nodes * node_cpus), gpu_s / (nodes * node_gpus) if node_gpus else 0.0)
    shape = f"{node_cpus} CPUs" + (f" + {node_gpus} GPU{'s' if node_gpus > 1 else ''}" if node_gpus else "")
    lines = [f"  sizing ({clips:,} clips of 10 s, costs measured in benchmarks/RESULTS.md): "
             f"{cpu_s / 3600:,.1f} core-hours" + (f" and {gpu_s / 3600:,.2f} GPU-hours" if node_gpus else "")
             + f" of work; {nodes} node(s) of {shape} for about {wall_s / 3600:,.1f} h (target {hours:g} h)"]
    if unmeasured:
        lines.append(f"  sizing leaves out {', '.join(unmeasured)}: no measured cost")
    return {"clips": clips, "core_hours": cpu_s / 3600, "gpu_hours": gpu_s / 3600, "nodes": nodes,
            "wall_hours": wall_s / 3600, "lines": lines}
