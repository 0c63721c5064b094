"""What the labels changed (``jobs/train/compare.py``): the previous model of record read back from its file, and
compared on the clips whose label did not change only."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from acoustic_env.jobs.train.compare import compare, comparison_line, read_previous, scored, write_predictions

NAMES = ["urban", "natural"]


def _run(run_id: str, y: np.ndarray, p1: np.ndarray, listed: dict | None = None, scored_rows: int | None = None):
    """A binary run over clips c00..: targets ``y``, P(natural) ``p1`` on the first ``scored_rows`` clips."""
    ids = np.array([f"c{i:02d}" for i in range(len(y))], dtype=object)
    n = len(y) if scored_rows is None else scored_rows
    predictions = {"clip_id": list(ids[:n]), "proba": {"logreg": np.c_[1 - p1[:n], p1[:n]]}}
    return scored(run_id, "logreg", "single_label", NAMES, listed, ids, y, predictions)


def test_the_previous_model_is_read_back_and_compared_on_unchanged_clips_only(tmp_path):
    rng = np.random.default_rng(0)
    y_old = rng.integers(0, 2, 60)
    y_new = y_old.copy()
    y_new[:10] = 1 - y_new[:10]  # ten labels corrected
    old = _run("r1", y_old, np.clip(y_new * 0.6 + rng.random(60) * 0.4, 0, 1))
    new = _run("r2", y_new, np.clip(y_new * 0.7 + rng.random(60) * 0.3, 0, 1),
               {"uri": "l.csv", "sha256": "ab" * 32, "clips": 10, "reviewed": 10, "conflicts": 0, "changed": 10},
               scored_rows=50)
    assert read_previous(str(tmp_path / "report")) is None  # a first run: nothing to compare with
    write_predictions(str(tmp_path / "report"), old)
    back = read_previous(str(tmp_path / "report"))
    assert back.targets == old.targets and set(back.proba) == set(old.proba)
    assert np.allclose(back.proba["c03"], old.proba["c03"], atol=1e-6)
    units = {f"c{i:02d}": f"g{i // 2}" for i in range(60)}
    cmp = compare(new, back, units, seed=0)
    assert cmp["previous"]["changed"] == 10 and cmp["table"]["changed"] == 10
    u = cmp["unchanged"]
    assert u["clips"] == 40  # 60, less the 10 relabelled, less the 10 the new run did not score
    kept = [f"c{i:02d}" for i in range(10, 50)]
    assert np.isclose(u["previous"], roc_auc_score(y_new[10:50], np.stack([back.proba[c] for c in kept])[:, 1]))
    assert np.isclose(u["new"], roc_auc_score(y_new[10:50], np.stack([new.proba[c] for c in kept])[:, 1]))
    assert u["new_interval"][0] <= u["new"] <= u["new_interval"][1]
    assert u["difference_interval"][0] <= u["difference"] <= u["difference_interval"][1]
    assert "10 clips against the table, 10 against the previous model's (run r1)" in comparison_line(cmp)[0]


def test_a_previous_model_of_another_task_is_not_compared(tmp_path):
    y = np.array([0, 1] * 10)
    other = scored("r1", "logreg", "single_label", ["a", "b"], None, np.array([f"c{i:02d}" for i in range(20)]), y,
                   {"clip_id": [f"c{i:02d}" for i in range(20)], "proba": {"logreg": np.c_[1 - y * 0.9, y * 0.9]}})
    cmp = compare(_run("r2", y, y * 0.8), other, {}, seed=0)
    assert cmp["unchanged"] is None and "another task" in cmp["note"]
    assert compare(_run("r2", y, y * 0.8), None, {}, seed=0) is None  # the table's labels and no earlier model
