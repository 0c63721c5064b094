"""Multi-label tasks as well served as single-label ones (issue 63, part 6): folds and splits stratified by label
presence, the networks' rare-label sampler, and ``--select-by`` picking the chosen model and scoring the searches.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import yaml
from sklearn.model_selection import StratifiedGroupKFold

from acoustic_env.candidates import PARAMS
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_table, write_features
from acoustic_env.learn import cv
from acoustic_env.learn.fit import draw_weights, in_memory, val_score
from acoustic_env.learn.metrics import headline
from acoustic_env.learn.splits import TEST, VAL, assign_splits, leaks, multilabel_folds, strata
from acoustic_env.learn.tuning import TuningPlan, inner_splits
from acoustic_env.learn.zoo import make_estimator

RARE = 4  # the rare label's column in ``_rare_label_table``


def _rare_label_table(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """240 clips in groups of two, four common labels (35 % each) and a rare one on 15 clips (6 %) whose label
    patterns are as varied as the common labels make them: the rare label is in no pattern's majority."""
    rng = np.random.default_rng(seed)
    y = (rng.random((240, 5)) < 0.35).astype(np.int64)
    y[:, RARE] = 0
    y[rng.permutation(240)[:15], RARE] = 1
    return y, np.repeat(np.arange(120), 2).astype(str)


def _rare_per_fold(y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    return [int(y[held, RARE].sum()) for _, held in splits]


def test_inner_folds_hold_a_rare_label_in_proportion_where_label_patterns_do_not():
    """The searches' inner folds (5 of them, 3 rare clips each expected) keep the rare label within one clip of its
    share in every fold, groups whole; stratifying by label pattern, as before, misses it by two or more."""
    by_pattern, by_presence = [], []
    for seed in range(6):
        y, groups = _rare_label_table(seed)
        splits = inner_splits(y, groups, 5, seed)
        assert all(not set(groups[a]) & set(groups[b]) for a, b in splits)
        by_presence.append(_rare_per_fold(y, splits))
        patterns = np.unique(y, axis=0, return_inverse=True)[1].reshape(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            old = StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), patterns, groups)
        by_pattern.append(_rare_per_fold(y, list(old)))
    assert all(abs(c - 3) <= 1 for counts in by_presence for c in counts), by_presence
    assert max(abs(c - 3) for counts in by_pattern for c in counts) >= 2, by_pattern


def test_grouped_presence_folds_are_nearly_as_balanced_as_the_plain_ones():
    """The group-aware iterative stratification against the plain one (every clip its own group): the plain folds
    spread each label's clips by one clip at most, the grouped ones by three (a group of two, and one); placing a
    group by one label alone, whatever it carries of the others, spread a common label by 11."""
    for seed in range(3):
        y, groups = _rare_label_table(seed)
        plain = multilabel_folds(y, np.arange(len(y)), 5, seed)
        grouped = multilabel_folds(y, groups, 5, seed)
        assert not leaks(groups, grouped)
        for label in range(y.shape[1]):
            spread = [np.ptp(np.bincount(f[y[:, label] == 1], minlength=5)) for f in (plain, grouped)]
            assert spread[0] <= 1 and spread[1] <= 3, (seed, label, spread)


def test_split_test_and_validation_hold_the_rare_label_in_proportion():
    """``assign_splits`` on a label matrix: the test fifth and the validation fifth of the rest hold the rare label
    at its share (15 clips x 0.2 = 3, 12 x 0.2 = 2.4) within a clip or two, with groups whole."""
    for seed in range(4):
        y, groups = _rare_label_table(seed)
        split = assign_splits(strata(y), groups, None, 0.2, 0.2, seed)
        assert not leaks(groups, split)
        assert abs((split == TEST).mean() - 0.2) < 0.03 and abs((split == VAL).sum() / (split != TEST).sum() - 0.2) < 0.03
        assert 2 <= y[split == TEST, RARE].sum() <= 4 and 1 <= y[split == VAL, RARE].sum() <= 4, seed


def test_the_sampler_draws_a_clip_by_its_rarest_positive_label():
    """The documented rule: 1 / the count of the clip's rarest positive label; no positive label: the commonest's."""
    y = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]])  # label 0 on 4 clips, label 1 on 1
    np.testing.assert_allclose(draw_weights(y, "multi_label").numpy(), [1 / 4, 1 / 4, 1 / 4, 1, 1 / 4])


def test_batches_drawn_hold_the_rare_label_far_above_its_base_rate():
    """Balanced sampler on a multi-label table where one label is on 3 % of the clips: an epoch's batches hold it
    on about a quarter of their rows (six times its base rate or more); without the sampler, at its base rate."""
    y, _ = _rare_label_table(0)
    y[np.flatnonzero(y[:, RARE])[7:], RARE] = 0  # 7 clips of 240: 2.9 %
    data = {"x_train": np.zeros((240, 2), np.float32), "y_train": y, "x_val": np.zeros((4, 2)), "y_val": y[:4]}
    share = {}
    for sampler in (False, True):
        stream = in_memory(data, "multi_label", seed=0, balanced_sampler=sampler)
        drawn = np.concatenate([yb.numpy() for _ in range(20) for _, yb in stream.train(32)])
        share[sampler] = drawn[:, RARE].mean()
    assert abs(share[False] - 7 / 240) < 1e-9 and share[True] > 6 * 7 / 240, share


def _disagreeing() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two models' probabilities for 3 labels: ``logreg`` ranks every clip right but never reaches 0.5 on the third
    label (mAP 1, macro F1 2/3); ``knn`` thresholds all but one clip right and ranks that one below a negative
    (macro F1 0.93, mAP 0.97)."""
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
    logreg = np.where(y == 1, 0.9, 0.1)
    logreg[:, 2] = np.where(y[:, 2] == 1, 0.4, 0.2)
    knn = np.where(y == 1, 0.6, 0.4)
    knn[0, 0], knn[1, 0] = 0.45, 0.48  # a positive under 0.5, and under a negative
    return y, {"logreg": logreg, "knn": knn}


def test_select_by_chooses_the_metric_s_winner_where_map_and_macro_f1_disagree():
    y, proba = _disagreeing()
    f1 = {m: headline("multi_label", y, p)["macro_f1"] for m, p in proba.items()}
    ap = {m: val_score("multi_label", y, p) for m, p in proba.items()}
    assert ap["logreg"] > ap["knn"] and f1["knn"] > f1["logreg"], (ap, f1)  # the two rankings disagree
    assert cv.choose("multi_label", y, proba)[0] == "logreg"  # the default: mAP
    chosen, _, scores = cv.choose("multi_label", y, proba, "macro_f1")
    assert chosen == "knn" and scores == pytest.approx(f1)
    assert cv.choose("multi_label", y, proba, "map")[0] == "logreg"


def test_a_search_scores_its_settings_by_the_select_by_metric():
    """knn's search on a multi-label table with ``TuningPlan(metric="macro_f1")``: each setting's inner score is the
    macro F1 of its pooled inner out-of-fold probabilities (the defaults' checked by refitting them on the same
    inner folds), on folds stratified by label presence."""
    y, groups = _rare_label_table(1)
    x = (y @ np.random.default_rng(1).standard_normal((5, 4)) + np.random.default_rng(2).standard_normal((240, 4)))
    est = make_estimator("knn", "multi_label", 5, 0, threads=1, search=TuningPlan(3, 2, "macro_f1")).fit(
        x, y, groups=groups)
    record = est.tuning_
    assert len(record.trials) == 3 and record.best in [t["params"] for t in record.trials]
    oof = np.zeros(y.shape)
    for fit_on, scored in record.splits:
        assert abs(y[scored, RARE].sum() - 7.5) <= 1
        oof[scored] = make_estimator("knn", "multi_label", 5, 0, threads=1).fit(x[fit_on], y[fit_on]).predict_proba(
            x[scored])
    assert record.trials[0]["score"] == pytest.approx(headline("multi_label", y, oof)["macro_f1"])
    assert record.trials[0]["score"] != pytest.approx(val_score("multi_label", y, oof))  # not the default's mAP


def test_a_misspelt_metric_is_one_line():
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"features": "f", "output": "o", "select_by": "f1"})
    assert str(info.value) == "select_by: must be one of ['auto', 'roc_auc', 'map', 'macro_f1', 'accuracy'], got 'f1'"


def test_a_multi_label_table_trains_with_the_sampler_and_is_chosen_by_macro_f1(tmp_path, monkeypatch):
    """Issue 63's done-when: ``train --balanced-sampler --select-by macro_f1`` on a multi-label task trains (no
    longer refused); every model's selection score is its pooled out-of-fold macro F1, the chosen model the best
    of them where mAP would choose the other, and the record and the report say which metric chose it."""
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 4)  # the network's figures need not be good, only chosen on
    task = tmp_path / "two.yaml"
    task.write_text(yaml.safe_dump({"name": "two_labels", "kind": "multi_label",
                                    "classes": {"urban": {"mids": [URBAN]}, "natural": {"mids": [NATURAL]}}}))
    # a table where the two metrics disagree (seed 1: knn's mAP 0.94 against 0.77, the network's macro F1 0.56
    # against 0.38; on seed 0, since knn's probability map became Platt's under a prior, knn led both)
    source = write_features(synthetic_table(60, class_mids=(URBAN, NATURAL), multi_label=True, seed=1),
                            str(tmp_path / "features"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--task", str(task), "--feature-groups",
                 "indices_raw", "--cv-folds", "3", "--baselines", "knn", "--tuning-trials", "1",
                 "--balanced-sampler", "--select-by", "macro_f1", "--no-ablations", "--shap-samples", "0",
                 "--no-progress"]) == 0
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    ev = metrics["evaluation"]
    assert ev["select_by"] == "macro_f1" and metrics["balance"]["balanced_sampler"]
    assert "rarest positive label" in metrics["balance"]["models"]["mlp"]
    tested = {m: metrics["models"][m]["test"] for m in ("knn", "mlp")}
    for m, figures in tested.items():
        assert ev["scores"][m] == pytest.approx(figures["macro_f1"]), m
    # knn has the better mAP (the default's choice), the network the better macro F1, which chooses
    assert max(tested, key=lambda m: tested[m]["map"]) == "knn" and ev["chosen"] == "mlp", tested
    assert "(macro_f1, --select-by)" in ev["description"]
    assert "val. score (macro_f1, --select-by)" in (out / "report" / "index.html").read_text()


def test_the_split_refuses_a_named_metric_with_the_streamed_cnn_in_one_line(tmp_path, capsys):
    """Under the split the streamed CNN has only its validation loss, no macro F1 to be chosen by: one line, before
    Ray starts, naming select_by."""
    source = write_features(synthetic_table(40, class_mids=(URBAN, NATURAL), seed=3), str(tmp_path / "features"))
    assert main(["train", "--features", source, "--output", str(tmp_path / "out"), "--cv-folds", "0",
                 "--baselines", "cnn", "--select-by", "macro_f1", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "acoustic-env: error: select_by: the split evaluation's streamed CNN has no validation macro_f1 to be chosen "
        "by; use --select-by auto, cross-validation, or leave cnn out of --baselines")
