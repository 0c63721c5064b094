"""Confident learning on probabilities made here (no model fitted): the noise figures the summary and the console
report, the flags, the suggestions and the intervals, each checked against what it is documented to mean.

Fast (well under a second each): the plain functions of ``acoustic_env.learn.confident`` on a few hundred
clips, so that ``make mutate`` can run them for every mutant.
"""

from __future__ import annotations

import numpy as np
from cleanlab.count import estimate_joint

from acoustic_env.learn import confident
from acoustic_env.learn.confident import (
    BOOTSTRAP_REPLICATES,
    bootstrap_intervals,
    multi_label_issues,
    single_label_issues,
)
from acoustic_env.learn.metrics import resample_groups

NOTE = ("95 % percentile interval over 200 bootstrap replicates that redraw whole groups (recordings) "
        "and re-estimate the confident joint")


def wrong_shares(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Single-label, as documented: per given class 1 - diagonal / row of the joint, then 1 - its trace."""
    joint = estimate_joint(targets, probs)
    return np.append(1 - np.diag(joint) / joint.sum(axis=1), 1 - np.trace(joint))


def multilabel_wrong_shares(targets: np.ndarray, probs: np.ndarray) -> list[float]:
    """Multi-label, as documented: per class, the share of given memberships (given 1) that are not true."""
    joint = estimate_joint([np.flatnonzero(r).tolist() for r in targets], probs, multi_label=True)
    return [j[1, 0] / j[1].sum() for j in joint]


def noisy(n: int = 240, k: int = 3, flip: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(given labels, out-of-fold-like probabilities that favour the true class, true labels)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = np.where(rng.random(n) < flip, (true + rng.integers(1, k, n)) % k, true)
    logits = 2.5 * np.eye(k)[true] + rng.standard_normal((n, k))
    return given, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), true


def few_replicates(monkeypatch) -> None:
    """The intervals with 20 redraws instead of 200: the same code, a tenth of the time."""
    real = confident.bootstrap_intervals
    monkeypatch.setattr(confident, "bootstrap_intervals",
                        lambda statistic, targets, probs, units, seed=0: real(statistic, targets, probs, units, 20,
                                                                              seed))


def test_single_label_noise_figures_are_the_confident_joint_read_by_given_class(monkeypatch):
    """Each per-class figure is what the summary says it is: counts of clips given the class (and flagged among
    them), the share of them wrongly labelled (row of the joint, off the diagonal), the class's share of true labels
    (column sum); the noise matrix is P(given | true); a clip's quality is the probability of its given label."""
    few_replicates(monkeypatch)
    given, probs, _ = noisy()
    names = ("urban", "natural", "indoor")
    issues = single_label_issues(given, probs, names, units=np.arange(len(given)) // 2, seed=3)
    joint = estimate_joint(given, probs)
    noise = issues.noise
    assert set(noise) == {"estimated_wrong_share", "interval", "interval_method", "flagged_share", "per_class", "joint",
                          "noise_matrix", "axes"}
    assert noise["axes"] == {"rows": "given label", "columns": "true label", "classes": list(names)}
    assert noise["interval_method"] == NOTE and BOOTSTRAP_REPLICATES == 200
    assert noise["joint"] == np.round(joint, 6).tolist()
    np.testing.assert_allclose(noise["noise_matrix"], joint / joint.sum(axis=0), atol=1e-6)
    assert noise["estimated_wrong_share"] == round(1 - np.trace(joint), 6)  # summary.json keeps 6 decimals
    assert noise["flagged_share"] == round(issues.flagged.mean(), 6) and 0 < issues.flagged.mean() < 0.5
    spans = bootstrap_intervals(wrong_shares, given, probs, np.arange(len(given)) // 2, 20, seed=3)
    assert noise["interval"] == spans[-1]
    for i, name in enumerate(names):
        cell = noise["per_class"][name]
        assert set(cell) == {"given", "flagged", "estimated_wrong_share", "estimated_true_share", "interval"}
        assert cell["given"] == (given == i).sum() and cell["flagged"] == (issues.flagged & (given == i)).sum()
        assert cell["estimated_wrong_share"] == round(1 - joint[i, i] / joint.sum(axis=1)[i], 6)
        assert cell["estimated_true_share"] == round(joint.sum(axis=0)[i], 6)
        assert cell["interval"] == spans[i]
    assert issues.quality.dtype == np.float64 and issues.flagged.dtype == bool
    np.testing.assert_allclose(issues.quality, probs[np.arange(len(given)), given])
    np.testing.assert_array_equal(issues.suggested, np.eye(3, dtype=np.int64)[probs.argmax(axis=1)])


def test_the_filter_the_user_chose_is_the_one_applied_and_the_seed_and_groups_reach_the_intervals(monkeypatch):
    few_replicates(monkeypatch)
    given, probs, _ = noisy(seed=1)
    names = ("a", "b", "c")
    by_argmax = single_label_issues(given, probs, names, filter_by="predicted_neq_given")
    np.testing.assert_array_equal(by_argmax.flagged, probs.argmax(axis=1) != given)
    default = single_label_issues(given, probs, names)
    assert not np.array_equal(default.flagged, by_argmax.flagged)
    grouped = single_label_issues(given, probs, names, units=np.arange(len(given)) // 12)
    assert grouped.noise["interval"] != default.noise["interval"]
    assert default.noise["interval"] == single_label_issues(given, probs, names, seed=0).noise["interval"]
    assert single_label_issues(given, probs, names, seed=1).noise["interval"] != default.noise["interval"]


def test_bootstrap_intervals_are_percentiles_of_group_redraws_that_hold_every_class():
    """The 2.5 and 97.5 percentiles of the statistic over the redraws (those that lack a class skipped), rounded to
    6 digits; with over half the redraws lacking a class, no interval (None for each value)."""
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 60)
    probs = np.c_[1 - rng.random(60), rng.random(60)]
    units = np.arange(60) // 3
    mean = lambda t, p: np.array([t.mean(), p[:, 1].mean()])  # noqa: E731
    draws = [mean(targets[r], probs[r]) for r in resample_groups(units, 50, 4)]
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    expected = [[round(float(a), 6), round(float(b), 6)] for a, b in zip(low, high)]
    assert bootstrap_intervals(mean, targets, probs, units, replicates=50, seed=4) == expected
    rare = np.zeros(60, dtype=int)
    rare[:2] = [1, 2]  # one clip each of classes 1 and 2: most redraws lack one of them
    three = np.c_[probs, probs[:, :1]]
    kept = sum(len(set(rare[r])) == 3 for r in resample_groups(np.arange(60), 50, 0))
    assert 0 < kept < 25 and bootstrap_intervals(mean, rare, three, None, replicates=50) == [None, None]
    few = np.zeros(60, dtype=int)
    few[:3] = 1  # three clips of class 1: a few redraws lack it, those skipped, the rest kept (one clip or more)
    usable = [r for r in resample_groups(np.arange(60), 50, 0) if few[r].any()]
    low, high = np.percentile([mean(few[r], probs[r]) for r in usable], [2.5, 97.5], axis=0)
    assert 25 <= len(usable) < 50 and any(few[r].sum() == 1 for r in usable)
    assert bootstrap_intervals(mean, few, probs, None, replicates=50) == [
        [round(float(a), 6), round(float(b), 6)] for a, b in zip(low, high)]
    # exactly half the redraws usable is enough for an interval
    seed = next(s for s in range(100) if sum(rare[r].any() for r in resample_groups(np.arange(60), 2, s)) == 1)
    assert None not in bootstrap_intervals(mean, (rare > 0).astype(int), probs, None, replicates=2, seed=seed)
    multi = np.c_[np.ones(60, dtype=int), rare == 1, rare == 2].astype(int)  # multi-label: memberships rarely drawn
    assert bootstrap_intervals(mean, multi, three, None, replicates=50) == [None, None]


def test_multi_label_noise_figures_read_each_class_one_vs_rest(monkeypatch):
    """Per class: memberships given (and flagged among them), the share of given memberships that are wrong and of
    absent ones that are missing, the true share; the clip-level wrong share is the flagged share; a class is
    suggested from probability 0.5 up."""
    rng = np.random.default_rng(2)
    true = (rng.random((210, 3)) < [0.5, 0.3, 0.4]).astype(int)
    targets = np.where(rng.random((210, 3)) < 0.08, 1 - true, true)
    probs = 1 / (1 + np.exp(-(np.where(true == 1, 2.5, -2.5) + rng.standard_normal((210, 3)))))
    probs[0] = [0.5, 0.4999, 0.9]
    few_replicates(monkeypatch)
    names = ("urban", "natural", "indoor")
    issues = multi_label_issues(targets, probs, names, units=np.arange(210) // 2, seed=2)
    joint = estimate_joint([np.flatnonzero(r).tolist() for r in targets], probs, multi_label=True)
    noise = issues.noise
    assert set(noise) == {"interval_method", "estimated_wrong_share", "flagged_share", "per_class", "joint", "axes"}
    assert noise["axes"] == {"0": "class", "1": "given 0/1", "2": "true 0/1", "classes": list(names)}
    assert noise["interval_method"] == NOTE
    np.testing.assert_allclose(noise["joint"], joint, atol=1e-6)
    assert noise["estimated_wrong_share"] == noise["flagged_share"] == round(issues.flagged.mean(), 6)
    assert 0 < issues.flagged.mean() < 0.5 and issues.flagged.dtype == bool
    spans = bootstrap_intervals(multilabel_wrong_shares, targets, probs, np.arange(210) // 2, 20, seed=2)
    for k, name in enumerate(names):
        cell, j = noise["per_class"][name], joint[k]
        assert cell["given"] == targets[:, k].sum() and cell["flagged"] == (issues.flagged & (targets[:, k] == 1)).sum()
        assert cell["estimated_wrong_share"] == round(j[1, 0] / j[1].sum(), 6)
        assert cell["estimated_missing_share"] == round(j[0, 1] / j[0].sum(), 6)
        assert cell["estimated_true_share"] == round(j[:, 1].sum(), 6)
        assert cell["interval"] == spans[k] and spans[k][0] < spans[k][1]
    assert issues.suggested[0].tolist() == [1, 0, 1] and issues.suggested.dtype == np.int64
    np.testing.assert_array_equal(issues.suggested, (probs >= 0.5).astype(int))
    assert issues.quality.shape == (210,) and issues.quality.dtype == np.float64
    assert (issues.quality[issues.flagged].mean() < issues.quality[~issues.flagged].mean())
    by_rank = multi_label_issues(targets, probs, names, filter_by="confident_learning")
    assert by_rank.flagged.sum() != issues.flagged.sum()
