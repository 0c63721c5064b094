"""``train --compare-shuffled`` (jobs/train/shuffled.py): the chosen model cross-validated again on folds drawn
clip by clip, printed and recorded beside the grouped figure; and the train report's importances per original
feature (jobs/train/explain.py: importances) from the same run.

The table leaks by construction: the clips of a recording are near copies of each other and share its label, and
nothing else tells the classes apart. Grouped folds must then score about chance, and folds that put a recording's
copies on both sides must score far higher: the sourcing-sound study's lesson (0.936 shuffled, 0.62 grouped).
"""

from __future__ import annotations

from markupsafe import escape  # the escaping of the report's templates (Jinja2)
import json

import numpy as np
import pyarrow as pa
import pytest

from acoustic_env.cli import main
from acoustic_env.demo.tables import NATURAL, UNRELATED, URBAN, synthetic_table, write_features

GROUPS, PER_GROUP = 12, 4


def _leaky_table(root: str) -> str:
    """``GROUPS`` recordings of ``PER_GROUP`` near-identical clips each, one label per recording, half of each class,
    and no signal of the class beyond the recording."""
    table = synthetic_table(GROUPS * PER_GROUP, signals=("raw",), rows_per_group=PER_GROUP)
    rng = np.random.default_rng(3)
    group = np.arange(table.num_rows) // PER_GROUP
    label = rng.permutation(np.arange(GROUPS) % 2)[group]
    table = table.set_column(table.schema.get_field_index("labels"), table.schema.field("labels"),
                             pa.array([[(URBAN, NATURAL)[c], UNRELATED] for c in label], pa.list_(pa.string())))
    column = "indices_raw"
    d = table.schema.field(column).type.list_size
    x = 3 * rng.standard_normal((GROUPS, d))[group] + 0.01 * rng.standard_normal((table.num_rows, d))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), d)
    table = table.set_column(table.schema.get_field_index(column), table.schema.field(column), vectors)
    return write_features(table, root)


@pytest.mark.slow  # a train run end to end (the MLP is always compared): about 20 CPU-s
def test_shuffled_folds_flatter_a_leaky_table_and_the_grouped_figure_stays_the_reported_one(tmp_path, capsys):
    """``train --compare-shuffled`` under grouped 3-fold CV of the leaky table: the chosen model's grouped figure
    (the reported one) near chance, the shuffled one near perfect, both in the console, metrics.json and the
    report; the linear model's importances come per original index, in metrics.json, a table and a figure."""
    source = _leaky_table(str(tmp_path / "t"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "logreg,knn", "--tuning-trials", "1", "--no-ablations",
                 "--shap-samples", "0", "--no-progress", "--compare-shuffled"]) == 0
    console = capsys.readouterr().out
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    ev = metrics["evaluation"]
    contrast = ev["shuffled"]
    chosen = ev["chosen"]
    assert contrast["model"] == chosen and contrast["folds"] == 3 and contrast["grouped_by"] == "group"
    # the grouped side is the reported figure itself; the shuffled side is far higher on the leaky table
    assert contrast["grouped"]["roc_auc"] == pytest.approx(metrics["models"][chosen]["test"]["roc_auc"])
    assert contrast["grouped"]["roc_auc"] < 0.75, contrast
    assert contrast["shuffled"]["roc_auc"] > 0.9 and contrast["shuffled"]["accuracy"] > 0.85, contrast
    assert contrast["shuffled"]["roc_auc"] > contrast["grouped"]["roc_auc"] + 0.25, contrast
    line = next(ln for ln in console.splitlines() if "shuffled against grouped folds" in ln)
    assert f"shuffled ROC AUC {contrast['shuffled']['roc_auc']:.3f}" in line
    assert f"grouped by recording ROC AUC {contrast['grouped']['roc_auc']:.3f}" in line
    page = (out / "report" / "index.html").read_text()
    section = page.split("<h2>Shuffled against grouped folds</h2>", 1)[1].split("</table>", 1)[0]
    assert f"{contrast['shuffled']['roc_auc']:.3f}" in section and "(reported)" in section

    # importances per original feature: the linear model's, named by the table's index names, drawn and tabled
    found = metrics["importances"]["logreg"]
    assert len(found["features"]) == 25 and all(name.startswith("indices_raw:") for name, _ in found["features"])
    assert escape(found["features_method"]) in page
    assert (out / "report" / "importance_logreg_features.png").stat().st_size


def test_compare_shuffled_needs_cross_validation(tmp_path, capsys):
    """Without cross-validation there is no grouped figure to set the shuffled one beside: refused in one line (exit
    2), whether the options say so (``--cv-folds 0``) or the table's size does (above ``--cv-max-clips``)."""
    source = write_features(synthetic_table(24, signals=("raw",)), str(tmp_path / "t"))
    for options, words in ((["--cv-folds", "0"], "cv_folds >= 2"), (["--cv-max-clips", "10"], "24 clips")):
        assert main(["train", "--features", source, "--output", str(tmp_path / "o"), "--feature-groups",
                     "indices_raw", "--no-progress", "--compare-shuffled", *options]) == 2
        err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("train: details")]
        assert len(err) == 1 and "compare_shuffled" in err[0] and words in err[0], err
