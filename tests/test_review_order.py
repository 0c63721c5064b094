"""The review queue's orders (learn/review_order.py) on small arrays, and the accuracy estimate's unbiasedness
whatever order reviewed the clips beside the random sample (a seeded simulation over many draws)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from acoustic_env.config.learning import REVIEW_ORDERS
from acoustic_env.jobs.audit.estimate import estimate_accuracy, normalize_verdict
from acoustic_env.pages.review import choose_items
from acoustic_env.learn.review_order import (
    ADAPTIVE,
    STRATEGIES,
    Pool,
    embed,
    k_centre,
    next_batch,
    refit,
)


def indices(picks) -> list[int]:
    return [p.index for p in picks]


def clustered(n_per: int = 10, seed: int = 0) -> np.ndarray:
    """Three tight clusters far apart: rows 0.., n_per.., 2*n_per.."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    return np.concatenate([c + rng.normal(scale=0.1, size=(n_per, 2)) for c in centres])


def test_the_registry_is_the_configs_choice():
    assert tuple(STRATEGIES) == REVIEW_ORDERS and ADAPTIVE <= set(STRATEGIES)
    with pytest.raises(ValueError, match="review_order: must be one of"):
        next_batch("cleverest", Pool(np.eye(2), np.array([0, 1]), np.eye(2)))


def test_suspect_puts_flags_first_then_lowest_label_quality():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.55, 0.45], [0.7, 0.3]])
    given = np.zeros(5, dtype=int)
    pool = Pool(probs, given, probs)
    assert indices(next_batch("suspect", pool, n=3)) == [2, 1, 3]
    picks = next_batch("suspect", pool, n=5)
    assert picks[0].reason == "lowest label quality 0.20"
    flagged = Pool(probs, given, probs, flagged=np.array([False, False, False, False, True]))
    assert indices(next_batch("suspect", flagged, n=2)) == [4, 2]
    assert next_batch("suspect", flagged, n=1)[0].reason == "lowest label quality 0.70, flagged"
    assert indices(next_batch("suspect", pool, {2: 0, 1: None}, n=2)) == [3, 4]  # reviewed clips leave the queue


def test_uncertain_picks_the_smallest_margin():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.1, 0.4], [0.34, 0.33, 0.33]])
    pool = Pool(probs, np.zeros(4, dtype=int), probs)
    picks = next_batch("uncertain", pool, n=3)
    assert indices(picks) == [3, 1, 2] and picks[0].reason == "margin 0.01"
    multi = Pool(np.array([[0.9, 0.1], [0.45, 0.9], [0.3, 0.05]]), np.array([[1, 0], [0, 1], [0, 0]]), np.eye(3))
    assert indices(next_batch("uncertain", multi, n=3)) == [1, 2, 0]  # the class nearest 0.5 decides


def test_diverse_covers_every_cluster_before_any_twice():
    emb = clustered()
    pool = Pool(np.full((30, 2), 0.5), np.zeros(30, dtype=int), emb)
    picks = next_batch("diverse", pool, n=3)
    assert sorted(i // 10 for i in indices(picks)) == [0, 1, 2]
    assert picks[0].reason == "nearest the centre of the collection"
    assert picks[1].reason.startswith("farthest from reviewed clips (")
    # clusters 0 and 1 reviewed: the next pick comes from cluster 2, the one left
    assert next_batch("diverse", pool, {0: 0, 10: 0}, n=1)[0].index // 10 == 2


def test_k_centre_takes_the_farthest_candidate_each_time():
    emb = np.array([[0.0], [1.0], [5.0], [10.0], [2.0]])
    assert [i for i, _ in k_centre(emb, np.array([0]), np.array([1, 2, 3, 4]), 3)] == [3, 2, 4]


def flipped_world(n: int = 120, seed: int = 0) -> tuple[Pool, np.ndarray]:
    """Two classes well apart in the embedding, a fifth of the labels flipped, and an out-of-fold model that
    knows nothing (every probability 0.5): only verdicts can tell the flips."""
    rng = np.random.default_rng(seed)
    true = np.arange(n) % 2
    emb = rng.normal(size=(n, 4)) + 3.0 * true[:, None]
    given = true.copy()
    flip = rng.choice(n, n // 5, replace=False)
    given[flip] = 1 - given[flip]
    return Pool(np.full((n, 2), 0.5), given, emb), true


def test_mixed_starts_diverse_among_suspects_then_re_ranks_on_the_verdicts():
    pool, true = flipped_world()
    first = next_batch("mixed", pool, n=10)
    assert first[0].reason.startswith("nearest the centre of the collection, label quality 0.50")
    reviewed = {p.index: int(true[p.index]) for p in first}
    second = next_batch("mixed", pool, reviewed, n=10)
    assert not set(indices(second)) & set(reviewed)
    assert second[0].reason.startswith("label quality ") and second[0].reason.endswith("after a refit on 10 verdicts")
    # the refit on the corrected labels finds the flips the audit's model could not see
    wrong = [i for i in indices(second) if pool.given[i] != true[i]]
    assert len(wrong) >= 8, (len(wrong), second)
    # the same verdicts said "unsure" settle nothing: no refit, the cold start goes on
    unsure = next_batch("mixed", pool, {i: None for i in reviewed}, n=10)
    assert unsure[0].reason.startswith("farthest from reviewed clips")


def test_the_refit_is_out_of_fold_so_a_wrong_label_does_not_vouch_for_itself():
    """60 noise dimensions beside one that tells the classes: fitted and scored on the same clips, a logistic
    regression would learn each flipped label back (its probability ~0.9); out of fold it doubts them."""
    rng = np.random.default_rng(2)
    true = np.arange(80) % 2
    given = true.copy()
    flip = rng.choice(80, 16, replace=False)
    given[flip] = 1 - given[flip]
    emb = np.column_stack([3.0 * true + rng.normal(size=80), rng.normal(size=(80, 60))])
    pool = Pool(np.full((80, 2), 0.5), given, emb)
    p_given = refit(pool, {0: int(true[0])})[np.arange(80), given]
    assert p_given[flip].mean() < 0.4 < p_given[given == true].mean() - 0.2, (p_given[flip].mean(),)


def test_mixed_refits_a_multi_label_pool():
    rng = np.random.default_rng(3)
    given = rng.integers(0, 2, size=(40, 3))
    pool = Pool(rng.uniform(size=(40, 3)), given, rng.normal(size=(40, 3)) + given)
    picks = next_batch("mixed", pool, {i: given[i] for i in range(10)}, n=5)
    assert len(picks) == 5 and all(p.index >= 10 for p in picks) and "refit on 10" in picks[0].reason


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_each_order_is_deterministic_for_a_seed_and_runs_out_cleanly(strategy):
    pool, true = flipped_world(40, seed=1)
    reviewed = {i: int(true[i]) for i in (0, 3, 7)}
    a, b = next_batch(strategy, pool, reviewed, 8, seed=5), next_batch(strategy, pool, reviewed, 8, seed=5)
    assert a == b and len(a) == 8 and not set(indices(a)) & set(reviewed) and len(set(indices(a))) == 8
    rest = next_batch(strategy, pool, {i: int(true[i]) for i in range(36)}, 8)
    assert sorted(indices(rest)) == [36, 37, 38, 39]  # only 4 left


def test_random_draws_afresh_per_seed():
    pool, _ = flipped_world(60)
    assert indices(next_batch("random", pool, n=10, seed=1)) != indices(next_batch("random", pool, n=10, seed=2))


def test_embed_keeps_a_few_components_of_the_standardised_features():
    X = np.random.default_rng(0).normal(size=(50, 80)) * np.arange(1, 81)
    emb = embed(X, dims=8)
    assert emb.shape == (50, 8) and emb.dtype == np.float32
    assert embed(X[:5], dims=8).shape == (5, 5)


# ---------------------------------------------------------------- the estimate stays unbiased whatever the order

def audit_like(n: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """An audit table of ``n`` clips, 15 % of them wrongly labelled, whose out-of-fold model sees most flips
    (the wrong ones get low label quality): what the queue orders and the page samples from. Returns it and
    whether each label is wrong."""
    rng = np.random.default_rng(seed)
    wrong = rng.uniform(size=n) < 0.15
    given = rng.integers(0, 2, size=n)
    p_given = np.clip(np.where(wrong, rng.beta(2, 5, n), rng.beta(5, 2, n)), 0.01, 0.99)
    p1 = np.where(given == 1, p_given, 1 - p_given)
    emb = rng.normal(size=(n, 3)) + wrong[:, None]
    table = pa.table({"clip_id": [f"c{i}" for i in range(n)],
                      "given_labels": [["b" if g else "a"] for g in given],
                      "prob_a": 1 - p1, "prob_b": p1, "label_quality": p_given, "flagged": p_given < 0.3,
                      "suspect_rank": np.argsort(np.argsort(p_given)) + 1,
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel().astype(np.float32)), 3)})
    return table, wrong


def reviewed_as(table: pa.Table, wrong: np.ndarray, rows, sample: str) -> list[dict]:
    ids = table["clip_id"].to_pylist()
    return [normalize_verdict({"clip_id": ids[i], "given_labels": table["given_labels"][i].as_py(), "sample": sample,
                               "verdict": "wrong" if wrong[i] else "correct"}) for i in rows]


@pytest.mark.parametrize("order,pooled_bias", [("suspect", -0.1), ("mixed", -0.1), ("uncertain", None),
                                               ("diverse", None), ("random", None)])
def test_the_accuracy_estimate_is_unbiased_whatever_order_reviewed_the_queue(order, pooled_bias):
    """Over many draws of the page (its random sample and its queue of 40 by ``order``), the estimate from the
    random sample errs by ~0 on average, while pooling every reviewed clip, as a naive count would, is biased
    (by at least ``pooled_bias``, where the order seeks wrong labels)."""
    table, wrong = audit_like(300, seed=11)
    accuracy = 1 - wrong.mean()
    errors, pooled = [], []
    for draw in range(150):
        queue, sample = choose_items(table, 40, 40, draw, ("a", "b"), order=order)
        records = reviewed_as(table, wrong, sample, "random") + reviewed_as(table, wrong, [p.index for p in queue],
                                                                            "suspects")
        errors.append(estimate_accuracy(records)["overall"]["accuracy"] - accuracy)
        pooled.append(np.mean([r["verdict"] == "correct" for r in records]) - accuracy)
    se = np.std(errors) / np.sqrt(len(errors))
    assert abs(np.mean(errors)) < 3.5 * se + 1e-3, (np.mean(errors), se)
    assert pooled_bias is None or np.mean(pooled) < pooled_bias, np.mean(pooled)
