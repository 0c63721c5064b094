"""How long the chunk-mode near-duplicate search takes against the number of clips.

    python benchmarks/duplicate_chunks.py [--clips 250,500,1000]

Times ``learn.duplicate_chunks.chunk_pairs`` (the standardisation and the exact k-NN over every chunk; not the
reading of the frames) on clips of 10 s: 90 chunk summaries each, drawn at random so that no pair is found, as in
a collection without copies. The search costs the looked-up chunks times the indexed ones: the square of the
clips. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from machine import describe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default="250,500,1000")
    args = ap.parse_args()
    from acoustic_env.learn.duplicate_chunks import chunk_pairs

    rng = np.random.default_rng(0)
    print(f"Chunk-mode near-duplicate search, 10-s clips (90 chunks each), {describe()}:\n")
    print("| clips | chunks indexed | seconds |\n|---:|---:|---:|")
    for n in (int(c) for c in args.clips.split(",")):
        chunks = [rng.standard_normal((90, 38)).astype(np.float32) for _ in range(n)]
        t = time.perf_counter()
        found = chunk_pairs(chunks)
        assert not len(found[0])
        print(f"| {n:,} | {90 * n:,} | {time.perf_counter() - t:.1f} |")


if __name__ == "__main__":
    main()
