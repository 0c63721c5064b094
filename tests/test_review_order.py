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
    settled,
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
    audited = Pool(probs, given, probs, quality=np.array([0.5, 0.1, 0.9, 0.3, 0.2]))  # the audit's own quality
    assert indices(next_batch("suspect", audited, n=3)) == [1, 4, 3]
    assert audited.label_quality(probs[:, ::-1]).tolist() == [0.1, 0.6, 0.8, 0.45, 0.3]  # other probs: theirs


def test_a_multi_label_clips_quality_is_its_least_supported_given_value():
    probs = np.array([[0.9, 0.4, 0.7], [0.45, 0.6, 0.05]])
    pool = Pool(probs, np.array([[1, 0, 1], [0, 1, 0]]), np.eye(2))
    np.testing.assert_allclose(pool.label_quality(), [0.6, 0.55])  # 1s: their probability; 0s: one minus it


def test_uncertain_picks_the_smallest_margin():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.1, 0.4], [0.34, 0.33, 0.33]])
    pool = Pool(probs, np.zeros(4, dtype=int), probs)
    picks = next_batch("uncertain", pool, n=3)
    assert indices(picks) == [3, 1, 2] and picks[0].reason == "margin 0.01"
    multi = Pool(np.array([[0.9, 0.1], [0.45, 0.9], [0.3, 0.05]]), np.array([[1, 0], [0, 1], [0, 0]]), np.eye(3))
    picks = next_batch("uncertain", multi, n=3)
    assert indices(picks) == [1, 2, 0] and picks[0].reason == "margin 0.10"  # the class nearest 0.5 decides


def test_ties_come_in_row_order_the_audits_own():
    margin = np.random.default_rng(0).permutation(np.repeat([0.1, 0.2, 0.3], 40))
    pool = Pool(np.column_stack([(1 + margin) / 2, (1 - margin) / 2]), np.zeros(120, dtype=int), np.eye(120))
    assert indices(next_batch("uncertain", pool, n=120)) == sorted(range(120), key=lambda i: (margin[i], i))


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


def test_k_centre_starts_nearest_the_centre_of_each_dimension_when_nothing_is_seen():
    emb = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 2.0], [0.0, 2.0], [6.0, 1.0], [4.0, 0.5]])  # centre (5, 0.92)
    (first, distance), = k_centre(emb, np.array([], dtype=int), np.arange(6), 1)
    assert first == 4 and np.isnan(distance)


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
    regression would learn each flipped label back (its probability ~0.9); out of fold it doubts them. In tiny
    units (1e-3): the embedding is standardised first, so the regularised regression sees them as any other."""
    rng = np.random.default_rng(2)
    true = np.arange(80) % 2
    given = true.copy()
    flip = rng.choice(80, 16, replace=False)
    given[flip] = 1 - given[flip]
    emb = 1e-3 * np.column_stack([3.0 * true + rng.normal(size=80), rng.normal(size=(80, 60))])
    pool = Pool(np.full((80, 2), 0.5), given, emb)
    p_given = refit(pool, {0: int(true[0])})[np.arange(80), given]
    assert p_given[flip].mean() < 0.4 < p_given[given == true].mean() - 0.2, (p_given[flip].mean(),)


def test_mixed_refits_a_multi_label_pool():
    rng = np.random.default_rng(3)
    given = rng.integers(0, 2, size=(40, 3))
    pool = Pool(rng.uniform(size=(40, 3)), given, rng.normal(size=(40, 3)) + given)
    picks = next_batch("mixed", pool, {i: given[i] for i in range(10)}, n=5)
    assert len(picks) == 5 and all(p.index >= 10 for p in picks) and "refit on 10" in picks[0].reason


def test_a_settled_verdict_replaces_the_label_and_an_unsettled_one_leaves_the_clip_out_of_the_refit():
    pool = Pool(np.full((4, 2), 0.5), np.array([0, 0, 1, 1]), np.eye(4))
    labels, usable = settled(pool, {0: 1, 2: None})
    assert labels.tolist() == [1, 0, 1, 1] and usable.tolist() == [True, True, False, True]
    assert pool.given.tolist() == [0, 0, 1, 1]  # the pool's own labels untouched


def test_a_single_label_refit_needs_two_settled_clips_of_each_class_it_learns_and_gives_the_others_zero():
    """Three classes, settled clips of two: the third gets probability 0 on every refitted row. Four usable clips,
    two of each class, are enough (two folds); one clip of a class is not (no fold could hold it out and learn it)."""
    rng = np.random.default_rng(1)
    given = np.array([0, 0, 1, 1, 0, 1])
    emb = rng.normal(size=(6, 2)) + 4.0 * given[:, None]
    probs = np.tile([0.3, 0.3, 0.4], (6, 1))
    pool = Pool(probs, given, emb)
    out = refit(pool, {4: None, 5: None})
    assert (out[:4, 2] == 0).all() and np.allclose(out[:4].sum(axis=1), 1) and not np.allclose(out[:4], probs[:4])
    assert np.array_equal(out[4:], probs[4:])  # unsettled: the audit's probabilities
    assert np.array_equal(refit(pool, {2: None, 4: None, 5: None}), probs)  # class 1 settled once: no refit


@pytest.mark.filterwarnings("ignore:Label not 2 is present in all training examples")  # a fold without the positive
@pytest.mark.parametrize("third, refits", [("varied", True), ("one positive", True), ("all ones", False),
                                           ("all zeros", False)])
def test_a_multi_label_refit_needs_each_class_both_present_and_absent(third, refits):
    rng = np.random.default_rng(4)
    given = rng.integers(0, 2, size=(30, 3))
    given[:, 2] = {"varied": given[:, 0], "one positive": np.arange(30) == 7, "all ones": 1, "all zeros": 0}[third]
    probs = rng.uniform(0.2, 0.8, size=(30, 3))
    out = refit(Pool(probs, given, rng.normal(size=(30, 3)) + given), {})
    assert np.array_equal(out, probs) != refits
    assert not refits or not np.isin(out, (0, 1)).all()  # probabilities, not decisions


def test_a_multi_label_refit_of_four_clips_takes_four_folds():
    given = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    probs = np.full((4, 2), 0.5)
    assert not np.allclose(refit(Pool(probs, given, given + np.array([[0.1], [0.2], [0.3], [0.4]])), {}), probs)


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_refits_folds_are_drawn_from_the_seed(multi_label):
    pool, true = flipped_world(60, seed=3)
    if multi_label:
        pool = Pool(np.full((60, 2), 0.5), np.column_stack([pool.given, 1 - pool.given]), pool.embedding)
    a, b, c = refit(pool, {}, seed=3), refit(pool, {}, seed=3), refit(pool, {}, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_mixed_refits_with_the_seed_it_is_given():
    pool, true = flipped_world()
    reviewed = {p.index: int(true[p.index]) for p in next_batch("mixed", pool, n=10)}
    quality = pool.label_quality((pool.probs + refit(pool, reviewed, seed=7)) / 2)
    expected = [i for i in sorted(range(120), key=lambda i: (quality[i], i)) if i not in reviewed][:10]
    picks = next_batch("mixed", pool, reviewed, n=10, seed=7)
    assert indices(picks) == expected != indices(next_batch("mixed", pool, reviewed, n=10, seed=0))
    assert picks[0].reason == f"label quality {quality[expected[0]]:.2f} after a refit on 10 verdicts"


def test_mixed_keeps_row_order_among_equally_suspect_clips_before_and_after_verdicts():
    """Label qualities of 0.2, 0.4 and 0.6, 30 clips each, shuffled: the cold start chooses among the first 20
    of quality 0.2; verdicts of one class refit nothing, and the queue is then the audit's, ties in row order."""
    rng = np.random.default_rng(2)
    quality = rng.permutation(np.repeat([0.2, 0.4, 0.6], 30))
    pool = Pool(np.column_stack([quality, 1 - quality]), np.zeros(90, dtype=int), rng.normal(size=(90, 3)))
    lowest = [i for i in range(90) if quality[i] == 0.2]
    assert set(indices(next_batch("mixed", pool, n=10))) <= set(lowest[:20])
    reviewed = {lowest[0]: 0, lowest[1]: 0}
    picks = next_batch("mixed", pool, reviewed, n=5)
    assert indices(picks) == lowest[2:7] and picks[0].reason == "label quality 0.20 after a refit on 2 verdicts"


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("verdict", ["settled", "unsure"])
def test_every_clip_reviewed_leaves_an_empty_batch(strategy, verdict):
    pool, true = flipped_world(20)
    assert next_batch(strategy, pool, {i: int(true[i]) if verdict == "settled" else None for i in range(20)}, 5) == []


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
    picks = next_batch("random", pool)  # ten clips, seed 0, unless told
    assert picks == next_batch("random", pool, {}, 10, 0) and {p.reason for p in picks} == {"random order"}


def test_embed_keeps_a_few_components_of_the_standardised_features():
    X = np.random.default_rng(0).normal(size=(50, 80)) * np.arange(1, 81)
    emb = embed(X, dims=8)
    assert emb.shape == (50, 8) and emb.dtype == np.float32
    assert embed(X[:5], dims=8).shape == (5, 5)


def test_embed_is_repeatable_for_a_seed_on_features_wide_enough_for_a_randomised_pca():
    X = np.random.default_rng(1).normal(size=(600, 600))
    assert np.array_equal(embed(X), embed(X, seed=0)) and not np.array_equal(embed(X), embed(X, seed=1))


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
