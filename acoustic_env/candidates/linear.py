"""``logreg`` and ``elasticnet``: standardised logistic regressions that choose their own strength on inner folds.

``logreg``: L2 logistic regression whose strength C is chosen by an inner CV on log loss. With noisy labels the
amount of regularisation decides whether the probabilities can be trusted, and the right amount depends on the number
of clips and features. Given groups, the inner folds keep every group on one side (``Build.splits``), so the search
never scores a C on a copy of a clip it was fitted on. It is also the audit's cross-fitted model and the CV ablations'
(fitted per feature subset per fold), which is why it stays L2 with lbfgs.

``elasticnet``: the same, searching the L1 share of the penalty (``l1_ratios``) with C (saga solver): the sparse
linear model of the studies we follow. A candidate of its own rather than ``logreg``'s search, because saga costs a
multiple of lbfgs there.

Below two inner folds (the rarest class too small) each falls back to a fixed C (``fallback_C``) and the middle L1
share. Saved as plain arrays (``learn.portable``'s ``linear`` form).
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.spec import Build, CandidateSpec, standardised


def build(p: dict[str, Any], b: Build) -> Any:
    """The standardised logistic regression of settings ``p``: C (and the L1 share) searched over ``b.splits`` (one
    split too: a per-split search scores each inner split on its own preprocessing, ``learn.zoo``; else
    ``b.inner_folds`` ungrouped folds, bounded by the rarest class), or fixed with no split or below two folds."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    cv: int | list[Any] = b.splits if b.splits is not None else min(b.inner_folds, b.smallest_class)
    n_splits = cv if isinstance(cv, int) else 2 * len(cv)  # a given split is scored as it is
    ratios = p["l1_ratios"]
    solver = "lbfgs" if max(ratios) == 0 else "saga"  # lbfgs has no L1 term
    clf = (LogisticRegressionCV(Cs=p["Cs"], l1_ratios=tuple(ratios), cv=cv, scoring=neg_log_loss, solver=solver,
                                max_iter=p["max_iter"], class_weight=p["class_weight"], random_state=b.seed,
                                use_legacy_attributes=False) if n_splits >= 2
           else LogisticRegression(C=p["fallback_C"], l1_ratio=ratios[len(ratios) // 2], solver=solver,
                                   max_iter=p["max_iter"], class_weight=p["class_weight"], random_state=b.seed))
    return standardised(clf, b)


def neg_log_loss(estimator: Any, X: Any, y: Any) -> float:
    """scikit-learn's ``neg_log_loss`` scorer as ``LogisticRegressionCV`` calls it, to the bit, without its checks.

    Why: the scorer validates and one-hot encodes its inputs anew on each call, about 2 ms, which was half of a
    small table's C search (a score per C per inner fold, in every fit of every fold). The same arithmetic in the
    same order (``tests/test_linear_scorer.py`` holds the search's scores equal to the scorer's, sure models
    included): the probabilities clipped to the dtype's eps, then the mean over the rows of the log loss of each
    row's class.
    """
    import numpy as np

    proba = estimator.predict_proba(X)  # a binary model's first column is 1 - p already, as the scorer rebuilds it
    eps = np.finfo(proba.dtype).eps
    proba = np.clip(proba, eps, 1 - eps)
    target = (np.asarray(y)[:, None] == estimator.classes_[None, :]).astype(proba.dtype)
    # numpy's log, as the scorer takes it: scipy's xlogy differs in the last bit near 1 (a sure, right model); the
    # clip keeps every log finite, so a class a row is not adds 0 to its sum
    return -float(np.average(-np.sum(target * np.log(proba), axis=1)))


def record_tuning(fitted: Any, p: dict[str, Any], n_splits: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The C search as the other searches record theirs: the mean inner score per C (and per L1 share when more
    than one is searched), and the setting chosen."""
    clf, ratios = fitted[-1], p["l1_ratios"]
    import numpy as np

    scores = np.asarray(clf.scores_).reshape(n_splits, len(ratios), -1).mean(axis=0)
    share = len(ratios) > 1  # the elastic net: each setting is (C, L1 share)
    trials = [{"params": {"C": float(c), **({"l1_ratio": float(r)} if share else {})}, "score": float(s)}
              for r, row in zip(ratios, scores) for c, s in zip(clf.Cs_, row)]
    return trials, {"C": float(clf.C_), **({"l1_ratio": float(clf.l1_ratio_)} if share else {})}


def fixed(chosen: dict[str, Any]) -> dict[str, Any]:
    """The chosen C (and L1 share) as one-value grids and as the fallback: a refit of the same setting, searching
    nothing (the fallback's when it is built with fewer than two inner folds, as a per-split search's final fit is)."""
    out = dict(chosen)
    if "C" in out:
        out["fallback_C"] = out["C"]
        out["Cs"] = [out.pop("C")]
        if "l1_ratio" in out:
            out["l1_ratios"] = [out.pop("l1_ratio")]
    return out


def _half_decades(low: int, high: int) -> list[float]:
    """10**low .. 10**high in half-decade steps, as ``numpy.logspace`` gives them (numpy is not imported here: the
    configs read this module)."""
    # pragma below: this runs once, at import, before mutmut's fork chooses a mutant (tests/test_linear.py holds it)
    return [10.0 ** (low + k / 2) for k in range(2 * (high - low) + 1)]  # pragma: no mutate


_COMMON = {"build": build, "format": "linear", "tunes_itself": True, "record_tuning": record_tuning,
           "fixed": fixed, "importance": "coefficients"}
# Cs: L2 strengths in half-decade steps tried by the inner CV; fallback_C when the rarest class has too few clips
# for an inner CV. l1_ratios: the penalty's L1 share (0: L2) searched with each C; the fallback takes the middle one.
LOGREG = CandidateSpec("logreg", "L2 logistic regression, C chosen on inner folds", default=True,
                       params={"Cs": _half_decades(-4, -1), "l1_ratios": [0.0], "fallback_C": 0.01,
                               "max_iter": 2000, "class_weight": None}, **_COMMON)
ELASTICNET = CandidateSpec("elasticnet", "elastic-net logistic regression, C and the L1 share chosen on inner folds",
                           params={"Cs": _half_decades(-3, 0), "l1_ratios": [0.0, 0.5, 1.0],
                                   "fallback_C": 0.1, "max_iter": 2000, "class_weight": None}, **_COMMON)
SPECS = (LOGREG, ELASTICNET)
