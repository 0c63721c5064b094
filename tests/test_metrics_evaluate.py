"""Every figure of the report's metrics (``learn.metrics.evaluate``), held to scikit-learn and to hand counts for
each task kind. ``tests/test_metrics.py`` holds the bootstrap's statistic and the adjusted accuracies;
``tests/test_train_inputs.py`` the checks on an audit's label-accuracy file."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from acoustic_env.learn.metrics import (
    adjusted_accuracy,
    assumed_label_accuracy,
    calibration,
    ece_floor,
    evaluate,
    headline,
    intervals,
    max_accuracy,
    resample_groups,
    study_ratio,
    true_accuracy,
    wilson,
)


def _single(k: int, n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and probabilities that lean towards the right class (ties broken by the noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    logits = rng.normal(0, 1, (n, k)) + 1.2 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _ece(hit: np.ndarray, conf: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error by its definition: the clips' share times |rate right - mean confidence| per bin."""
    index = np.minimum((conf * bins).astype(int), bins - 1)
    return sum((index == b).mean() * abs(hit[index == b].mean() - conf[index == b].mean())
               for b in range(bins) if (index == b).any())


@pytest.mark.parametrize("k", [2, 3])
def test_single_label_metrics_are_scikit_learns(k):
    y, proba = _single(k)
    names = [f"c{j}" for j in range(k)]
    m = evaluate("single_label", names, y, proba)
    pred = proba.argmax(axis=1)
    assert m["accuracy"] == accuracy_score(y, pred) and m["balanced_accuracy"] == balanced_accuracy_score(y, pred)
    auc = roc_auc_score(y, proba[:, 1]) if k == 2 else roc_auc_score(y, proba, multi_class="ovr")
    assert m["roc_auc"] == pytest.approx(auc, abs=1e-12) and m["n"] == len(y)
    assert m["map"] == pytest.approx(np.mean([average_precision_score(y == j, proba[:, j]) for j in range(k)]))
    assert m["confusion"] == confusion_matrix(y, pred).tolist()
    p, r, f, s = precision_recall_fscore_support(y, pred, zero_division=0)
    assert m["per_class"] == {c: {"precision": pytest.approx(p[j]), "recall": pytest.approx(r[j]),
                                  "f1": pytest.approx(f[j]), "support": int(s[j])} for j, c in enumerate(names)}
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    # binary: one curve, the second class's; several classes: one per class
    assert list(m["roc_curves"]) == (names[1:] if k == 2 else names)
    fpr, tpr, _ = roc_curve(y == 1, proba[:, 1])
    assert m["roc_curves"]["c1"] == {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    hit, conf = ((y == 1).astype(int), proba[:, 1]) if k == 2 else ((pred == y).astype(int), proba.max(axis=1))
    assert m["calibration"]["ece"] == pytest.approx(_ece(hit, conf))
    assert sum(m["calibration"]["counts"]) == len(y)
    assert (m["max_accuracy"] is None) == (k != 2)


def test_multi_label_metrics_are_per_label_at_one_half():
    rng = np.random.default_rng(1)
    y = (rng.random((80, 3)) < 0.4).astype(int)
    y[:, 2] = 1  # a label every clip has: no AUC, balanced accuracy or AP for it
    proba = np.clip(0.45 * y + 0.6 * rng.random((80, 3)), 0, 1)
    names = ["a", "b", "c"]
    m = evaluate("multi_label", names, y, proba)
    pred = (proba >= 0.5).astype(int)
    assert m["accuracy"] == accuracy_score(y, pred)  # exact match: every label of the clip right
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y[:, j], proba[:, j]) for j in (0, 1)]))
    assert m["map"] == pytest.approx(np.mean([average_precision_score(y[:, j], proba[:, j]) for j in (0, 1)]))
    assert m["balanced_accuracy"] == pytest.approx(np.mean([balanced_accuracy_score(y[:, j], pred[:, j])
                                                            for j in (0, 1)]))
    assert m["confusion"] == multilabel_confusion_matrix(y, pred).tolist()
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert m["per_class"]["c"]["support"] == 80 and list(m["roc_curves"]) == ["a", "b"]
    assert m["calibration"]["ece"] == pytest.approx(_ece(y.ravel(), proba.ravel()))
    assert (m["max_accuracy"], m["max_accuracy_threshold"]) == (None, None)
    none = evaluate("multi_label", names, np.ones((5, 3), dtype=int), np.full((5, 3), 0.7))
    assert none["roc_auc"] is None and none["map"] is None and none["balanced_accuracy"] is None


def test_a_test_split_of_one_class_gives_no_auc_and_no_curve():
    y = np.zeros(12, dtype=int)
    proba = np.tile([0.7, 0.2, 0.1], (12, 1))
    m = evaluate("single_label", ["a", "b", "c"], y, proba)
    assert m["roc_auc"] is None and m["map"] is None and m["roc_curves"] == {} and m["accuracy"] == 1.0
    assert m["calibration"] == {"observed": [], "predicted": [], "counts": [], "ece": None,
                                "ece_floor": None}  # every clip right
    assert m["confusion"][0] == [12, 0, 0] and len(m["confusion"]) == 3


def test_calibration_counts_the_clips_of_each_point_of_the_curve():
    conf = np.array([0.05, 0.15, 0.15, 0.55, 0.95, 0.96, 0.99, 1.0])
    hit = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    onehot = np.stack([1 - hit, hit], axis=1)
    cal = calibration("single_label", onehot, np.stack([1 - conf, conf], axis=1), None)
    assert cal["counts"] == [1, 2, 1, 4] and cal["observed"] == [0.0, 0.5, 1.0, 1.0]
    assert cal["predicted"] == pytest.approx([0.05, 0.15, 0.55, 0.975])
    assert cal["ece"] == pytest.approx(_ece(hit, conf))
    five = calibration("single_label", onehot, np.stack([1 - conf, conf], axis=1), None, n_bins=5)
    assert five["counts"] == [3, 1, 4] and five["ece"] == pytest.approx(_ece(hit, conf, 5))


def test_the_ece_floor_is_the_median_ece_of_outcomes_drawn_from_the_probabilities_themselves():
    """Ten clips at 0.5: the ECE is |hits - 5| / 10, whose median under the binomial law is 0.1 (P(5 hits) = 0.25,
    P(4-6) = 0.66). Ten more at 1.0 always hit and halve it; certain probabilities have none; a thousand clips at 0.5
    leave about 0.674 standard deviations of the hits' share (0.0107). The report's figure is this one."""
    from scipy.stats import binom

    half = np.full(10, 0.5)
    gaps = np.abs(np.arange(11) - 5) / 10
    exact = min(g for g in gaps if binom.pmf(np.arange(11), 10, 0.5)[gaps <= g].sum() >= 0.5)
    assert ece_floor(half) == exact == 0.1
    assert ece_floor(np.concatenate([half, np.ones(10)])) == 0.05
    assert ece_floor(np.array([0.0, 1.0, 1.0, 0.0])) == 0.0
    assert 0.009 < ece_floor(np.full(1000, 0.5)) < 0.0125
    # 250,000: fewer draws (160, FLOOR_VALUES), the same law: 0.674 standard deviations of the share, 0.00067
    assert 0.0005 < ece_floor(np.full(250_000, 0.5)) < 0.00085
    conf = np.random.default_rng(0).uniform(0.5, 1.0, 60)
    hit = (np.random.default_rng(1).random(60) < conf).astype(int)
    cal = calibration("single_label", np.stack([1 - hit, hit], axis=1), np.stack([1 - conf, conf], axis=1), None)
    assert cal["ece_floor"] == ece_floor(conf) and ece_floor(conf, seed=1) != ece_floor(conf)
    assert calibration("single_label", np.stack([1 - hit, hit], axis=1), np.stack([1 - conf, conf], axis=1), None,
                       n_bins=2)["ece_floor"] == ece_floor(conf, 2)


def test_the_ece_floor_bins_as_calibration_does_and_draws_its_outcomes_from_the_seeded_generator():
    """Against its definition, written out: the median of ``_ece`` (the ECE by bins, as ``calibration`` computes it)
    over 400 draws of outcomes from the probabilities, drawn by numpy's seeded generator as uniform numbers below
    them; 10 bins, and 2. Probabilities of both sides of several bins, so a bin's gap cannot hide in another's."""
    conf = np.concatenate([np.full(8, p) for p in (0.05, 0.12, 0.5, 0.85, 0.95, 1.0)])
    for bins in (10, 2):
        rng = np.random.default_rng(3)
        want = np.median([_ece((rng.random(len(conf)) < conf).astype(int), conf, bins) for _ in range(400)])
        assert ece_floor(conf, bins, seed=3) == pytest.approx(want, abs=1e-12)


def test_intervals_resample_groups_and_are_seeded():
    y, proba = _single(2, n=60, seed=2)
    units = np.arange(60) // 3
    first = intervals("single_label", y, proba, units, seed=5, replicates=40)
    assert first == intervals("single_label", y, proba, units, seed=5, replicates=40)
    assert first != intervals("single_label", y, proba, units, seed=6, replicates=40)
    for name in ("roc_auc", "accuracy", "macro_f1"):
        assert first[name][0] <= first[name][1]
    right = int((proba.argmax(axis=1) == y).sum())
    assert first["accuracy_wilson"] == list(wilson(right, 60))
    draws = list(resample_groups(units, 3, seed=5))
    assert all(len(d) == 60 and len(set(units[d])) <= 20 for d in draws)
    assert all(np.array_equal(np.sort(d[:3]) // 3, np.full(3, d[0] // 3)) for d in draws)  # whole groups
    # a replicate with one class has no AUC: fewer than half defined, the interval is None
    assert intervals("single_label", np.zeros(60, dtype=int), proba, units, replicates=40)["roc_auc"] is None


def test_intervals_of_a_multi_label_task_count_a_clip_right_when_every_label_is():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 10)
    proba = np.where(y == 1, 0.8, 0.2)
    proba[:10, 1] = 0.9  # wrong on the second label of the first ten clips
    out = intervals("multi_label", y, proba, np.arange(40), replicates=20)
    assert out["accuracy_wilson"] == list(wilson(40 - 5, 40))


def test_wilson_and_the_adjustment_at_their_edges():
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    half = np.sqrt(0.025 + 1 / 400) / 1.1  # z = 1: centre (0.5 + 1/20) / 1.1 = 0.5
    assert wilson(5, 10, z=1.0) == pytest.approx((0.5 - half, 0.5 + half))
    assert true_accuracy(0.5, 0.6, 4) == pytest.approx((0.5 - 0.4 / 3) / (0.6 - 0.4 / 3))
    assert true_accuracy(0.5, 0.25, 4) is None and study_ratio(0.5, 0.0) is None and study_ratio(0.5, 0.5) == 1.0
    est = {"method": "wilson", "sample": "random", "overall": {"accuracy": 0.9, "low": 0.8, "high": 0.95, "n": 40}}
    adj = adjusted_accuracy(0.99, 100, est, 2)
    assert adj["adjusted"] == 1.0 and adj["interval"][1] == 1.0  # clipped to [0, 1]
    assert adj["label_accuracy"] == {"accuracy": 0.9, "low": 0.8, "high": 0.95, "n": 40, "method": "wilson",
                                     "sample": "random"}
    assert adj["raw_interval"] == list(wilson(99, 100)) or adj["raw_interval"] == pytest.approx(wilson(99, 100))
    obs_lo, obs_hi = wilson(99, 100)
    assert adj["study_ratio_interval"] == pytest.approx([obs_lo / 0.95, obs_hi / 0.8])
    grid = [true_accuracy(o, q, 2) for o in (obs_lo, obs_hi) for q in np.linspace(0.8, 0.95, 21)]
    assert adj["interval"][0] == pytest.approx(min(grid))
    chance = {"overall": {"accuracy": 0.5, "low": 0.5, "high": 0.5}}
    assert adjusted_accuracy(0.7, 100, chance, 2)["interval"] is None  # labels at chance: no figure, no interval


def test_the_edges_of_a_test_split_count_as_the_report_says():
    """A probability of exactly 0.5 is a positive; a class of one clip has its AUC and curve; a class absent from
    the split and never predicted counts as F1 0 in the macro average (over every class of the task), its precision
    0, not 1; a label no clip has is left out of the multi-label AUC."""
    y = np.array([0, 0, 0, 1, 1, 0])  # class 2: absent; class 1: two clips
    proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1],
                      [0.9, 0.05, 0.05]])
    m = evaluate("single_label", ["a", "b", "c"], y, proba)
    pred = proba.argmax(axis=1)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0))
    assert m["macro_f1"] == pytest.approx((f1_score(y == 0, pred == 0) + f1_score(y == 1, pred == 1)) / 3)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["micro_f1"] == pytest.approx(4 / 6) and list(m["roc_curves"]) == ["a", "b"]
    one = evaluate("single_label", ["a", "b"], np.array([0, 0, 0, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6],
                                                                                   [0.3, 0.7]]))
    assert one["roc_auc"] == 1.0 and list(one["roc_curves"]) == ["b"] and one["map"] == pytest.approx(1.0)
    y2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])  # label 2: no clip; label 1: one clip
    p2 = np.array([[0.5, 0.2, 0.1], [0.1, 0.9, 0.2], [0.7, 0.4, 0.3], [0.2, 0.1, 0.5]])
    ml = evaluate("multi_label", ["a", "b", "c"], y2, p2)
    assert ml["accuracy"] == 0.75 and ml["per_class"]["a"]["recall"] == 1.0  # 0.5 counts as present
    assert ml["roc_auc"] == pytest.approx(1.0) and list(ml["roc_curves"]) == ["a", "b"]
    two = evaluate("multi_label", ["a", "b"], y2[:, :2], p2[:, :2])
    assert list(two["roc_curves"]) == ["a", "b"]  # two labels: a curve each, not a binary task's one
    assert headline("multi_label", np.ones((4, 2), dtype=int), p2[:, :2])["roc_auc"] is None
    assert headline("single_label", y, proba)["macro_f1"] == pytest.approx(m["macro_f1"])


def test_the_best_threshold_may_be_predicting_no_positive():
    y = np.array([0, 0, 0, 0, 1])
    acc, threshold = max_accuracy("single_label", y, np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6],
                                                                [0.9, 0.1]]))
    assert acc == 0.8 and threshold == 1.0  # no clip at or above 1.0 is called positive


def test_bootstrap_groups_may_be_named_by_text_and_any_group_drawn():
    units = np.array(["rec-b", "rec-a", "rec-b", "rec-c"])
    drawn = [sorted(set(units[r])) for r in resample_groups(units, 200, seed=0)]
    assert {g for d in drawn for g in d} == {"rec-a", "rec-b", "rec-c"}


def test_the_intervals_are_the_2_5th_and_97_5th_percentiles_of_the_replicates():
    y, proba = _single(2, n=60, seed=2)
    units = np.arange(60) // 3
    got = intervals("single_label", y, proba, units, seed=5, replicates=40)
    draws = [headline("single_label", y[rows], proba[rows]) for rows in resample_groups(units, 40, seed=5)]
    for name in ("roc_auc", "accuracy", "macro_f1"):
        values = [d[name] for d in draws]
        assert got[name] == [np.percentile(values, 2.5), np.percentile(values, 97.5)], name


def test_an_auc_defined_in_fewer_than_half_the_replicates_has_no_interval():
    """Two classes of one recording each among ten: a replicate holds both in about 41 % of the draws, so the AUC
    gets no interval (a third would do for a looser rule) while the accuracy, defined in every draw, gets one."""
    y = np.repeat([0, 1, 2, 2, 2, 2, 2, 2, 2, 2], 6)
    units = np.arange(60) // 6
    proba = np.full((60, 3), 0.2) + 0.6 * np.eye(3)[y]
    defined = np.mean([len(set(y[rows])) == 3 for rows in resample_groups(units, 400, seed=0)])
    assert 1 / 3 < defined < 1 / 2
    got = intervals("single_label", y, proba, units, seed=0, replicates=400)
    assert got["roc_auc"] is None and got["accuracy"] is not None


def test_a_label_or_class_of_one_clip_still_counts_in_the_auc_and_map():
    rng = np.random.default_rng(3)
    y = (rng.random((40, 2)) < 0.5).astype(int)
    y[:, 1] = 0
    y[7, 1] = 1  # one clip has label b
    proba = np.clip(0.4 * y + 0.6 * rng.random((40, 2)), 0, 1)
    m = evaluate("multi_label", ["a", "b"], y, proba)
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y[:, j], proba[:, j]) for j in (0, 1)]))
    single, p3 = np.arange(40) % 2, rng.dirichlet(np.ones(3), 40)
    single[5] = 2  # one clip of class 2
    onehot = np.eye(3)[single]
    m = evaluate("single_label", ["a", "b", "c"], single, p3)
    assert m["map"] == pytest.approx(np.mean([average_precision_score(onehot[:, j], p3[:, j]) for j in range(3)]))


def test_a_multi_label_clip_at_exactly_one_half_is_predicted_positive_in_the_wilson_interval():
    y, proba = np.ones((4, 2), dtype=int), np.full((4, 2), 0.5)
    assert intervals("multi_label", y, proba, np.arange(4), replicates=4)["accuracy_wilson"] == list(wilson(4, 4))


def test_the_curves_counts_are_its_tenths_of_probability_and_a_certain_miss_counts_in_the_ece():
    conf = np.array([0.05, 0.15, 0.21, 0.29, 0.55, 0.85, 0.95, 0.99, 1.0])
    hit = np.array([0, 0, 1, 0, 1, 1, 1, 1, 0])
    cal = calibration("single_label", np.stack([1 - hit, hit], axis=1), np.stack([1 - conf, conf], axis=1), None)
    assert cal["counts"] == [1, 1, 2, 1, 1, 3]  # [0, 0.1), [0.1, 0.2), [0.2, 0.3), ... [0.9, 1]
    assert cal["ece"] == pytest.approx(_ece(hit, conf))


def test_an_assumed_label_accuracy_is_an_estimate_of_no_sample_and_no_interval():
    assert assumed_label_accuracy(0.8) == {"method": "assumed", "sample": None,
                                           "overall": {"accuracy": 0.8, "low": 0.8, "high": 0.8, "n": None}}
    unknown = {"method": "wilson", "sample": "random", "overall": {"accuracy": 0.5, "low": 0.0, "high": 0.9, "n": 4}}
    assert adjusted_accuracy(0.8, 100, unknown, 2)["study_ratio_interval"] is None  # a label accuracy of 0: no ratio
