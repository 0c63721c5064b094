"""The training report: intervals, calibration counts, misclassified clips with audio, exact hyper-parameters,
the columns used and left out, and the page in a real browser (headless Chromium).

One small train run without search (``trials=0``) on a synthetic feature table
whose clips are real audio files; the report it writes is checked against
numbers recomputed here from the run's own outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from worlds import console_errors, fetched_elsewhere, wait_for

from acoustic_env.pages.report import MAX_MISTAKES, metrics_section, mistakes
from acoustic_env.learn.fit import DEFAULT_PARAMS
from acoustic_env.learn.metrics import wilson
from acoustic_env.table import RANDOM_REASON, SIGNAL_REASON


def _page(report: Path) -> str:
    return (report / "index.html").read_text()


@pytest.mark.slow
def test_every_metric_has_its_interval_and_the_accuracy_interval_is_wilson(report):
    metrics, page = json.loads((report / "metrics.json").read_text()), _page(report)
    for model, r in metrics["models"].items():
        m, ci = r["test"], metrics["evaluation"]["models"][model]["intervals"]
        correct = round(m["accuracy"] * m["n"])
        assert ci["accuracy_wilson"] == pytest.approx(list(wilson(correct, m["n"])))
        lo, hi = wilson(correct, m["n"])
        assert f"{m['accuracy']:.3f} <span class='ci'>[{lo:.3f}, {hi:.3f}]</span>" in page
        for key in ("roc_auc", "macro_f1", "accuracy"):  # bootstrap intervals, around their point estimates
            low, high = ci[key]
            assert low <= m[key] <= high and high - low > 0.01
            assert f"{m[key]:.3f} <span class='ci'>[{low:.3f}, {high:.3f}]</span>" in page
        # calibration: one count per point of the curve, all the test clips (binary: every clip scores)
        cal = m["calibration"]
        assert len(cal["counts"]) == len(cal["observed"]) and sum(cal["counts"]) == m["n"]
    assert "<h3>Label noise</h3>" in page and "those are noisy" in page
    assert "--label-accuracy" in page  # no estimate given: the page says how to get the adjusted figure


@pytest.mark.slow
def test_misclassified_clips_have_players_and_spectrograms(report):
    metrics, page = json.loads((report / "metrics.json").read_text()), _page(report)
    saved = metrics["evaluation"]["saved_model"]  # the chosen model: the mistakes shown are its own
    mlp = metrics["models"][saved]["test"]
    wrong = round((1 - mlp["accuracy"]) * mlp["n"])
    assert wrong > 0, "the run made no mistake to list; weaken the signal"
    assert f"Misclassified clips ({wrong} of {mlp['n']}, {saved}, held-out test split)" in page
    section = page.split("id='mistakes'", 1)[1].split("<h2", 1)[0]
    audio = re.findall(r"<audio controls preload='none' src='([^']+)'", section)
    images = re.findall(r"<img src='(assets/[^']+)'", section)
    assert len(audio) == len(images) == min(wrong, MAX_MISTAKES)
    for rel in audio + images:
        assert (report / rel).stat().st_size > 500
    assert "predictions" not in json.loads((report / "metrics.json").read_text())  # kept out of the summary


def test_the_label_noise_note_quotes_audiosets_checks_only_for_an_audioset_task():
    """AudioSet's 64-84 % is that corpus's figure: a task of a user's own labels gets the general caveat."""
    m = {"n": 4, "accuracy": 0.5, "calibration": {"ece": 0.1}}
    results = {"task": {"kind": "single_label", "name": "labels:night,day"}, "models": {"logreg": {"test": m}}}
    own = str(metrics_section(results))
    assert "<h3>Label noise</h3>" in own and "AudioSet" not in own and "any of them may be wrong" in own
    audioset = str(metrics_section({**results, "task": {**results["task"], "audioset": True}}))
    assert "AudioSet's labels were found right for only about 64–84 %" in audioset


def test_the_metrics_table_gives_each_models_ece_beside_its_floor():
    """The ECE after (before) its map, then the ECE a calibrated model as sharp scores on these clips by chance."""
    mapped = {"n": 4, "calibration": {"ece": 0.1, "ece_floor": 0.0523}, "calibration_before": {"ece": 0.2}}
    plain = {"n": 4, "calibration": {"ece": 0.07, "ece_floor": 0.081}}
    page = str(metrics_section({"task": {"kind": "single_label", "name": "t"},
                                "models": {"logreg": {"test": mapped}, "cnn": {"test": plain}}}))
    header = re.findall(r"<th>([^<]*)</th>", page)
    column = header.index("ECE&#39;s floor (a calibrated model&#39;s as sharp, on these clips)")
    assert header[column - 1] == "ECE (before its map)"
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in page.split("<tr")[2:4]]
    assert [(r[0], r[column - 1], r[column]) for r in rows] == [("logreg", "0.100 (0.200)", "0.052"),
                                                                ("cnn", "0.070", "0.081")]
    assert "against its floor" in page


def test_mistakes_are_exactly_the_wrong_predictions():
    names = ["urban", "natural"]
    proba = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]
    results = {"task": {"kind": "single_label", "class_names": names}, "evaluation": {"saved_model": "mlp"},
               "predictions": {"clip_id": ["a", "b", "c", "abcdefghijk_30000"], "uri": ["u"] * 4,
                               "start_s": [None] * 4, "end_s": [None] * 4,
                               "group": [None, None, None, "abcdefghijk"], "y": [0, 1, 0, 1],
                               "proba": {"mlp": proba, "logreg": [[0.5, 0.5]] * 4}}}
    model, wrong = mistakes(results)
    assert model == "mlp" and [w["clip_id"] for w in wrong] == ["abcdefghijk_30000", "c"]  # most confident first
    assert wrong[0]["given"] == ["natural"] and wrong[0]["predicted"] == ["urban"] and wrong[0]["confidence"] == 0.7
    assert wrong[0]["source"] == "https://www.youtube.com/watch?v=abcdefghijk&t=30s" and wrong[1]["source"] is None


@pytest.mark.slow
def test_hyperparameters_are_exact_and_columns_say_why_left_out(report):
    page = _page(report)
    params = page.split("<h2>Hyper-parameters</h2>", 1)[1].split("<h2", 1)[0]
    assert DEFAULT_PARAMS["weight_decay"] == 0.0001
    assert "<td class='t'>weight_decay</td><td>0.0001</td>" in params and "0.000<" not in params
    assert "<td class='t'>lr</td><td>0.001</td>" in params
    columns = page.split("<h2>Feature columns</h2>", 1)[1].split("<h2", 1)[0]
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["counts"]["excluded_columns"]["vggish"] == RANDOM_REASON
    assert metrics["counts"]["excluded_columns"]["indices_fg"] == SIGNAL_REASON
    for column, why in metrics["counts"]["excluded_columns"].items():
        assert f"<td class='t'>{column}</td><td class='t'>left out</td>" in columns and why in columns
    for column in metrics["groups"]:
        assert f"<td class='t'>{column}</td><td class='t'>used</td>" in columns


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, browser):
    browser.get((report / "index.html").as_uri())
    wait_for(browser, "return [...document.images].every(i => i.complete)")
    broken = browser.execute_script("return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    assert broken == [] and browser.execute_script("return document.images.length") >= 4
    browser.execute_script("document.querySelectorAll('audio').forEach(a => { a.preload = 'metadata'; a.load(); })")
    wait_for(browser, "const a = [...document.querySelectorAll('audio')];"
                   "return a.length > 0 && a.every(x => x.readyState >= 1 && x.duration > 0.5 && !x.error)")
    assert console_errors(browser) == [] and fetched_elsewhere(browser, "file://") == []
    # the metrics table (ten columns and more) scrolls in its own box: the page itself never scrolls sideways
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.execute_script("const t = document.querySelector('h2 + p + .scroll > table, h2 + .scroll > table');"
                                  "return t !== null && getComputedStyle(t.parentElement).overflowX === 'auto'")


@pytest.mark.slow
def test_a_wide_screen_shows_the_cross_validated_metrics_table_whole(cv_report, browser):
    """The cross-validated metrics table (twelve columns) scrolls in its box on a narrow screen; on a 1,600-pixel one
    the page widens to show every column (its last, the best-threshold accuracy, was out of sight at any width),
    while the prose keeps a readable measure."""
    browser.set_window_size(1600, 1000)
    browser.get((cv_report / "index.html").as_uri())
    table = "document.querySelector('h2 + p + .scroll > table')"
    assert browser.execute_script(f"return {table}.rows[0].cells.length") >= 12
    assert browser.execute_script(f"const box = {table}.parentElement; return box.scrollWidth <= box.clientWidth")
    # the prose (every paragraph is a note) keeps its 60-em measure while the tables take the width
    assert browser.execute_script("return Math.max(...[...document.querySelectorAll('p')].map("
                                  "p => p.getBoundingClientRect().width))") < 1000
    browser.set_window_size(1000, 1000)
    assert browser.execute_script(f"const box = {table}.parentElement; return box.scrollWidth > box.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.slow
def test_cross_validated_report_shows_pooled_intervals_per_fold_and_out_of_fold_mistakes(cv_report):
    metrics, page = json.loads((cv_report / "metrics.json").read_text()), _page(cv_report)
    ev = metrics["evaluation"]
    assert ev["method"] == "cross_validation" and "<h2>Metrics (out-of-fold, all clips)</h2>" in page
    for model, r in metrics["models"].items():
        m = r["test"]
        assert m["n"] == 60
        lo, hi = wilson(round(m["accuracy"] * 60), 60)
        assert f"{m['accuracy']:.3f} <span class='ci'>[{lo:.3f}, {hi:.3f}]</span>" in page
    folds = page.split("<h3>Per fold (", 1)[1].split("</table>", 1)[0]
    assert folds.count("<tr class=''>") == 3
    saved = metrics["models"][ev["saved_model"]]["test"]
    wrong = round((1 - saved["accuracy"]) * 60)
    assert f"Misclassified clips ({wrong} of 60, {ev['saved_model']}, out-of-fold, all clips)" in page
    gap = metrics["gap"]  # under CV: each searched model's inner search score against its out-of-fold score
    searched = metrics["search"]["nested"]
    compared = {m for m, n in searched.items() if n["metric"] == "selection"}  # logreg's C: by log loss
    assert gap["selection"] == "inner search" and set(gap["models"]) == compared and "mlp" in compared
    assert "Not compared: logreg (its search scored neg_log_loss)" in gap["note"]
    for model, g in gap["models"].items():
        assert g["held_out"] == ev["scores"][model] and len(g["per_fold_selection"]) == 3
        assert g["gap"] == pytest.approx(np.mean(searched[model]["inner_scores"]) - ev["scores"][model])
    assert "<h3>Overfitting: inner search against out-of-fold (ROC AUC)</h3>" in page
    assert "<h2>The network: MLP (" in page and (cv_report / "network.png").stat().st_size > 1000


def _scoped_titles(report: Path) -> dict[str, str]:
    """The titles (the PNG's Title chunk, plots._png) of the figures drawn from the evaluation's predictions."""
    from PIL import Image

    names = ["roc.png", "calibration.png", *sorted(p.name for p in report.glob("confusion_*.png"))]
    return {name: Image.open(report / name).text.get("Title", "") for name in names}


@pytest.mark.slow
def test_figures_of_the_split_run_say_held_out_test_split(report):
    titles = _scoped_titles(report)
    assert len(titles) >= 4, titles  # ROC, calibration, one confusion matrix per model (mlp, logreg)
    for name, title in titles.items():
        assert "(held-out test split" in title and "out-of-fold" not in title, (name, title)


@pytest.mark.slow
def test_the_split_run_reports_its_validation_to_test_gap_and_draws_its_network(report):
    from PIL import Image

    metrics, page = json.loads((report / "metrics.json").read_text()), _page(report)
    gap = metrics["gap"]
    assert gap["selection"] == "validation split" and set(gap["models"]) == {"mlp", "logreg"}
    for model, g in gap["models"].items():
        assert g["selection"] == metrics["evaluation"]["scores"][model] == metrics["models"][model]["val_score"]
        assert g["held_out"] == pytest.approx(metrics["models"][model]["test"]["roc_auc"])  # binary: the test AUC
        assert f"<td>{g['gap']:+.3f}</td>" in page
    layers = metrics["network"]["layers"]  # trials=0: the default network, as trained
    assert [r["layer"] for r in layers] == ["linear", "activation", "dropout"] * DEFAULT_PARAMS["depth"] + ["linear"]
    assert layers[0]["out"] == DEFAULT_PARAMS["width"] and layers[-1]["out"] == 1
    assert Image.open(report / "network.png").text["Title"].startswith("MLP (")


def test_gap_pairs_each_evaluations_selection_score_with_its_held_out_score():
    from sklearn.metrics import roc_auc_score

    from acoustic_env.jobs.train.crossval import _nested_tuning
    from acoustic_env.jobs.train.gap import generalisation_gap
    from acoustic_env.learn.cv import cross_validate
    from acoustic_env.learn.tuning import TuningPlan

    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    x = rng.standard_normal((80, 5)) + 0.8 * y[:, None]
    proba = {"mlp": rng.random(80), "logreg": rng.random(80)}
    split = generalisation_gap("single_label", {"method": "split", "scores": {"mlp": 0.9, "logreg": 0.7}}, {},
                               {"y": y.tolist(), "proba": {m: np.c_[1 - p, p].tolist() for m, p in proba.items()}})
    for m, score in (("mlp", 0.9), ("logreg", 0.7)):
        test = roc_auc_score(y, proba[m])
        assert split["models"][m] == {"selection": score, "held_out": pytest.approx(test),
                                      "gap": pytest.approx(score - test)}
    # cross-validation: real nested searches (xgboost's settings by ROC AUC; logistic regression's C by log loss)
    result = cross_validate(x, y, np.arange(80) % 4, "single_label", 2, ["logreg", "xgboost"],
                            groups=np.arange(80) // 2, search=TuningPlan(2, 2), threads=1)
    nested = _nested_tuning(result)
    records = result.searches["xgboost"]
    assert nested["xgboost"]["inner_scores"] == [max(t["score"] for t in r.trials) for r in records]
    cv = generalisation_gap("single_label", {"method": "cross_validation", "scores": result.scores},
                            {"nested": nested}, None)
    assert set(cv["models"]) == {"xgboost"} and "Not compared: logreg (its search scored neg_log_loss)" in cv["note"]
    g = cv["models"]["xgboost"]
    assert g["held_out"] == result.scores["xgboost"] and g["selection"] == pytest.approx(
        np.mean([max(t["score"] for t in r.trials) for r in records]))
    assert g["gap"] == pytest.approx(g["selection"] - g["held_out"]) and cv["selection"] == "inner search"


def test_the_network_is_drawn_from_its_torch_module():
    from PIL import Image
    import io

    from acoustic_env.pages.report import network_section
    from acoustic_env.pages.plots import network_png
    from acoustic_env.learn.mlp import MLP, layer_table

    layers = layer_table(MLP(in_dim=20, n_out=3, depth=2, width=32, activation="gelu", dropout=0.25))
    assert layers == [{"layer": "linear", "in": 20, "out": 32}, {"layer": "activation", "name": "gelu"},
                      {"layer": "dropout", "p": 0.25}, {"layer": "linear", "in": 32, "out": 32},
                      {"layer": "activation", "name": "gelu"}, {"layer": "dropout", "p": 0.25},
                      {"layer": "linear", "in": 32, "out": 3}]
    page = network_section({"network": {"layers": layers, "saved": True}})
    assert "<h2>The network: MLP (the saved model)</h2>" in page
    rows = re.findall(r"<tr class=''>(.*?)</tr>", page)
    assert rows == ["<td class='t'>input</td><td>20</td><td class='t'></td>",
                    "<td class='t'>hidden 1</td><td>32</td><td class='t'>gelu, dropout 0.25</td>",
                    "<td class='t'>hidden 2</td><td>32</td><td class='t'>gelu, dropout 0.25</td>",
                    "<td class='t'>output (logits)</td><td>3</td><td class='t'></td>"]
    png = Image.open(io.BytesIO(network_png(layers, "MLP (the saved model)")))
    assert png.text["Title"] == "MLP (the saved model)" and png.size[0] > 300


@pytest.mark.slow
def test_figures_of_the_cross_validated_run_say_out_of_fold(cv_report):
    titles = _scoped_titles(cv_report)
    assert len(titles) >= 4, titles
    for name, title in titles.items():
        assert "(out-of-fold, all clips" in title and "test split" not in title, (name, title)
