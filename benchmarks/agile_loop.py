"""The agile loop at a million clips, each step timed: an example, its top 50, scripted verdicts, a probe, every
clip rescored, the next batch (``mixed``).

    python benchmarks/agile_loop.py --seeds TABLE [--rows 1000000] [--dim 1024] [--rounds 3]
                                    [--work /tmp/acoustic-env-agile-bench] [--index FILE]

The table: ``--rows`` clips generated from the BirdNET embeddings of a real table (``--seeds``, e.g. the 96
forest recordings extracted with ``--embedders birdnet``) by ``vector_index.py``'s method: each row a real
vector moved towards a second by U(0, 0.5) plus Gaussian noise of half the real vectors' per-dimension
spread, in the search space (standardised, L2-normalised), float16, memory-mapped (2 GB at 1,000,000 x
1,024). The class: the rows drawn from the example's own recording and the 9 recordings nearest it (about
10 % of the clips); the scripted reviewer answers from that truth.

Each round, as ``labels new-class`` runs one, timed step by step in this process (one core's BLAS):

1. round 0 only: the example's 50 nearest clips (exact: one pass of the matrix, in 50,000-row chunks; with
   ``--index``, the USearch graphs of the same rows, ``vector_index.py --keep``'s file: mapped, then one query at
   ``learn/vector_index.py``'s 256 candidates in each graph, the map counted in the step);
2. the verdicts: round 0 judges the 50 hits, each later round the 20 clips the previous round picked (the
   scripted reviewer's time is not counted);
3. the probe: a logistic regression on the embedding (scikit-learn, the judged clips against 200 random
   negatives, as ``labels/new_class.py``'s list takes random clips as ``other``);
4. every clip rescored by the probe (one pass of the matrix);
5. the next 20 clips by ``mixed`` (``learn/review_order.py``: the probe's probabilities, each unjudged clip
   counted as ``other``, the verdicts settled; its refit on the embedding runs on the first 32 principal
   components, fitted on a 20,000-row sample and applied in chunks, timed as its own step).

Prints a Markdown table of each step's seconds per round (wall; the round's CPU seconds and the load average
beside it: the machine is shared) and the positives found.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from machine import describe
from vector_index import CHUNK, FIT_ROWS, raw, seed_vectors

TOP = 50
BATCH = 20
NEGATIVES = 200
PCA_SAMPLE = 20_000


def generate(work: Path, rows: int, dim: int, seeds_table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the rows in the search space, float16; each row's seed recording; the seeds), written once."""
    from acoustic_env.learn.duplicates import DistanceSpace

    data, origin = work / f"rows-{rows}x{dim}.f16", work / f"origin-{rows}.npy"
    rng = np.random.default_rng(0)
    seeds = seed_vectors(seeds_table, dim, rng)
    if not origin.exists():
        work.mkdir(parents=True, exist_ok=True)
        space = DistanceSpace.fit([raw(seeds, FIT_ROWS, rng)[0]])
        out = np.memmap(data, np.float16, "w+", shape=(rows, dim))
        first = np.empty(rows, np.int16)
        for start in range(0, rows, CHUNK):
            x, a = raw(seeds, min(CHUNK, rows - start), rng)
            out[start:start + len(x)] = space.transform([x])
            first[start:start + len(x)] = a
        out.flush()
        np.save(origin, first)
    return np.memmap(data, np.float16, "r", shape=(rows, dim)), np.load(origin), seeds


def scores(rows: np.ndarray, w: np.ndarray, b: float = 0.0) -> np.ndarray:
    """``rows @ w + b`` in chunks (float32): one pass of the memory-mapped matrix."""
    out = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), CHUNK):
        out[start:start + CHUNK] = np.asarray(rows[start:start + CHUNK], np.float32) @ w + b
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", required=True, help="a feature table with a birdnet column (real embeddings)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/acoustic-env-agile-bench")
    ap.add_argument("--index", help="the USearch file of the same rows (vector_index.py --keep, the same --rows and "
                                    "--seeds): the top 50 from it")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from acoustic_env.learn.review_order import Pool, next_batch

    t = time.perf_counter()
    rows, origin, seeds = generate(Path(args.work), args.rows, args.dim, args.seeds)
    made = time.perf_counter() - t
    centred = (seeds - seeds.mean(0)) / (seeds.std(0) + 1e-9)
    example_seed = 0
    near = np.argsort(((centred - centred[example_seed]) ** 2).sum(1))[:10]
    truth = np.isin(origin, near)
    example = int(np.flatnonzero(origin == example_seed)[0])
    rng = np.random.default_rng(1)
    steps: list[dict[str, float]] = []
    judged: dict[int, int] = {}
    with threadpool_limits(1):
        t, cpu = time.perf_counter(), time.process_time()
        if args.index:
            from vector_index import kept

            found = kept(args.index).search(np.asarray(rows[example], np.float32), TOP + 1)[0]
            top = np.array([i for i in found.tolist() if i != example][:TOP])
        else:
            sims = scores(rows, np.asarray(rows[example], np.float32))
            sims[example] = -np.inf
            top = np.argpartition(-sims, TOP)[:TOP]
            top = top[np.argsort(-sims[top])]
        first = time.perf_counter() - t
        t = time.perf_counter()
        sample = np.asarray(rows[np.sort(rng.choice(args.rows, PCA_SAMPLE, replace=False))], np.float32)
        pca = PCA(n_components=32, svd_solver="randomized", random_state=0).fit(sample)
        embedding = np.empty((args.rows, 32), np.float32)
        for start in range(0, args.rows, CHUNK):
            embedding[start:start + CHUNK] = pca.transform(np.asarray(rows[start:start + CHUNK], np.float32))
        projected = time.perf_counter() - t
        batch = [example, *top.tolist()]
        for rnd in range(args.rounds):
            step = {f"top 50 ({'the index' if args.index else 'exact scan'})": first if rnd == 0 else 0.0,
                    "embedding for mixed (PCA 32)": projected if rnd == 0 else 0.0}
            judged.update({i: 0 if truth[i] else 1 for i in batch})  # class 0: the new class, 1: other
            t = time.perf_counter()
            negatives = [i for i in rng.choice(args.rows, NEGATIVES, replace=False) if i not in judged]
            idx = np.array([*judged, *negatives])
            y = np.array([*judged.values(), *[1] * len(negatives)])
            X = np.asarray(rows[np.sort(idx)], np.float32)[np.argsort(np.argsort(idx))]
            probe = LogisticRegression(max_iter=1000, C=1.0).fit(X, y) if len(set(y)) > 1 else None
            step["probe (logistic regression)"] = time.perf_counter() - t
            t = time.perf_counter()
            if probe is not None:
                logit = scores(rows, -probe.coef_[0].astype(np.float32), -float(probe.intercept_[0]))
                p = 1 / (1 + np.exp(-logit))
            else:
                p = np.full(args.rows, 0.5, np.float32)
            step["every clip rescored"] = time.perf_counter() - t
            t = time.perf_counter()
            given = np.ones(args.rows, np.int64)
            for i, label in judged.items():
                given[i] = label
            pool = Pool(probs=np.stack([p, 1 - p], axis=1), given=given, embedding=embedding)
            batch = [pick.index for pick in next_batch("mixed", pool, judged, BATCH, seed=0)]
            step["next 20 (mixed)"] = time.perf_counter() - t
            step["round"] = sum(step.values())
            step["round CPU s"] = time.process_time() - cpu
            step["load average"] = os.getloadavg()[0]
            cpu = time.process_time()
            step["positives found"] = sum(1 for i, label in judged.items() if label == 0)
            steps.append(step)
    print(f"{time.strftime('%Y-%m-%d')}, {describe()}, Python {platform.python_version()}; {args.rows} clips x "
          f"{args.dim} from {len(seeds)} real BirdNET vectors of {args.seeds}; the class {int(truth.sum())} clips "
          f"({truth.mean():.1%}); one BLAS thread; the table generated in {made:.0f} s\n")
    names = list(steps[0])
    print("| step | " + " | ".join(f"round {i}" for i in range(len(steps))) + " |")
    print("|---|" + "---:|" * len(steps))
    for name in names:
        cells = [f"{s[name]:.0f}" if name == "positives found" else f"{s[name]:.1f}" if name == "load average"
                 else f"{s[name]:.2f}" for s in steps]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
