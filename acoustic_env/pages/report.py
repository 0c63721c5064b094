"""The static report: ``report/index.html`` with its PNGs, clip assets and ``metrics.json``, written through fsspec.

One self-contained page that opens from disk in any browser (relative links,
inline CSS, no scripts, no fonts or anything else fetched from elsewhere).

What a reader of figures measured on a few dozen clips needs besides the
figures: their 95 % intervals (``evaluation.models[m].intervals``, computed by
the job with ``learn.metrics.intervals``), the clips behind the mistakes (to
hear whether the model or the label is wrong), the calibration curve's clips
per point, what each model did about class balance and every model's recall per
class (a rare class never predicted is a 0 there), the hyper-parameters exactly
as used, the feature columns used and those left out with the reason, and a
reminder that the labels themselves are noisy. The misclassified clips' players and spectrograms are written by the
review page's code (``pages.review.write_assets``), so the two pages
decode and draw a clip the same way.

The exploratory-analysis section renders ``results["eda"]`` (computed by
``learn.eda.explore``): per feature group the values that differ most between
classes, correlation heatmaps of the named indices, and a t-SNE map of the clips
on which the misclassified ones are marked from the stored predictions (the same
list as the misclassified-clips section, not recomputed); then the study's own
figures: one top-20 ranking across every group by Welch's t, the MPS's t-values as
heatmaps per signal, and a t-SNE map per embedding column. Its full tables (every
value, the maps' coordinates) go to ``eda.json`` beside the page.
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.learn.duplicates import merge_lines
from acoustic_env.learn.eda import MAX_HEATMAP, MAX_MAP_POINTS, TOP_RANKING
from acoustic_env.pages import plots
from acoustic_env.pages.review import source_url, write_assets
from acoustic_env.storage import filesystem, join, redact
from acoustic_env.table import FeatureSet

#: The figures ``train --compare-shuffled`` sets side by side, as ``learn.metrics.headline`` names them, and their words.
SHUFFLED_FIGURES = (("roc_auc", "ROC AUC"), ("accuracy", "accuracy"), ("macro_f1", "macro F1"))


def grouped_words(contrast: dict[str, Any]) -> str:
    """How the folds of record were drawn, in words (the console's and the report's)."""
    by = contrast["grouped_by"]
    return "grouped by recording" if by == "group" else f"the folds of column {by!r}"


#: At most this many misclassified clips get a player (the most confident mistakes first): each costs a decode.
MAX_MISTAKES = 24
#: Values listed (and plotted) per feature group and comparison in the EDA section; eda.json has them all.
TOP_DIFFERENCES = 10
#: Original features listed per model in the importances' table (the figure and metrics.json keep 25).
TOP_ORIGINAL = 10
#: The metrics table's columns: (metric in ``evaluate``, heading, its interval's key in ``intervals`` or None).
METRICS = (("accuracy", "accuracy", "accuracy_wilson"), ("accuracy", "accuracy (bootstrap)", "accuracy"),
           ("roc_auc", "ROC AUC", "roc_auc"), ("macro_f1", "macro F1", "macro_f1"),
           ("balanced_accuracy", "balanced acc.", None), ("map", "mAP", None), ("micro_f1", "micro F1", None))
NOISY_LABELS = ("Every figure here is measured against the <em>given</em> labels, and those are noisy: AudioSet's "
                "labels were found right for only about 64–84 % of urban/natural clips in hand checks. A model "
                "that hears the right class where the label is wrong is counted as a mistake, so the figures "
                "understate the model when labels are wrong at random. ")

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td.t,th:first-child{text-align:left}img{max-width:100%;margin:.3em}
.note{color:#555;font-size:.9em;max-width:60em}code{background:#f5f5f5;padding:0 .2em}
.ci{color:#666;font-size:.85em;white-space:nowrap}.left-out td{color:#777}
.clips{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:10px}
.clip{border:1px solid #ddd;border-radius:6px;padding:6px;font-size:.9em}.clip img{margin:4px 0;width:100%}
.clip audio{width:100%;height:30px}.clip .id{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
details{margin:.5em 0;border-left:3px solid #ddd;padding-left:.6em}summary{cursor:pointer}h4{margin:.8em 0 .2em}"""


def clip_predictions(features: FeatureSet, rows: np.ndarray, y: np.ndarray,
                     proba: dict[str, np.ndarray]) -> dict[str, Any]:
    """The scored clips (``rows`` of ``features``), their targets and every model's probabilities, as plain lists.

    The report lists the misclassified ones with their audio, so it needs where
    each clip lives, not only its id.
    """
    rows = np.asarray(rows, dtype=np.int64)
    clips = features.clips.take(pa.array(rows)).to_pydict()
    return {"clip_id": clips["clip_id"], "uri": clips["uri"], "start_s": clips["start_s"], "end_s": clips["end_s"],
            "group": clips["group"],
            "y": np.asarray(y).tolist(), "proba": {m: np.asarray(p, dtype=float).round(6).tolist()
                                                   for m, p in proba.items()}}


def _fmt(v: Any) -> str:
    """A measured figure: three decimals are all a test set of a few hundred clips supports."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _exact(v: Any) -> str:
    """A setting: shown as given (0.0001 stays 0.0001, not 0.000)."""
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):  # a grid of values (logreg's Cs): each one exact, not numpy's repr
        return "[" + ", ".join(_exact(x) for x in v) + "]"
    return html.escape(repr(float(v)) if isinstance(v, float) else str(v))


def _plain(v: Any) -> str:
    """A count, or a small dict of counts, as text a person reads (no braces and quotes)."""
    if isinstance(v, dict):
        return "(" + ", ".join(f"{k} {_plain(x)}" for k, x in v.items()) + ")"
    if isinstance(v, (list, tuple)):
        return " + ".join(map(str, v))
    return str(v)


def _table(header: list[str], rows: list[list[Any]], row_class: list[str] | None = None) -> str:
    """Rows of cells; a cell that is already HTML comes as ``("html", text)``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(c: Any) -> str:
        if isinstance(c, tuple) and c and c[0] == "html":
            return f"<td>{c[1]}</td>"
        return f"<td class='t'>{_fmt(c)}</td>" if isinstance(c, str) else f"<td>{_fmt(c)}</td>"

    classes = row_class or [""] * len(rows)
    body = "".join(f"<tr class='{k}'>" + "".join(cell(c) for c in r) + "</tr>" for r, k in zip(rows, classes))
    return f"<table><tr>{head}</tr>{body}</table>"


def _write(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def _with_interval(value: float | None, interval: list[float] | None) -> tuple[str, str]:
    if value is None:
        return ("html", "–")
    ci = f" <span class='ci'>[{interval[0]:.3f}, {interval[1]:.3f}]</span>" if interval else ""
    return ("html", f"{value:.3f}{ci}")


def _accuracy_note(adjusted: dict[str, Any] | None) -> tuple[str, str] | str:
    """Both adjusted figures of one accuracy, named: the noise model's, then the study's ratio."""
    if not adjusted:
        return ""
    noise = ("undefined" if adjusted["adjusted"] is None else
             _with_interval(adjusted["adjusted"], adjusted["interval"])[1])
    ratio = adjusted.get("study_ratio")
    study = "" if ratio is None else "<br>acc/a " + _with_interval(ratio, adjusted["study_ratio_interval"])[1]
    return ("html", f"noise model {noise}{study}")


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """Every PNG of the report, by file name."""
    models = results["models"]
    names = results["task"]["class_names"]
    scope = _scope(results)
    out = {"roc.png": plots.roc_png({m: r["test"]["roc_curves"] for m, r in models.items()}, scope),
           "calibration.png": plots.calibration_png(
               {**{m: r["test"]["calibration"] for m, r in models.items()},
                **{f"{m}, before its map": r["test"]["calibration_before"] for m, r in models.items()
                   if r["test"].get("calibration_before") and m == (results.get("evaluation") or {}).get("chosen")}},
               scope)}
    if results.get("grid"):
        out["grid.png"] = plots.grid_png(results["grid"]["cells"])
    history = results.get("history")
    if history and history["rounds"]:
        out["history.png"] = plots.history_png(history["rounds"], history["title"])
    if results.get("network"):
        out["network.png"] = plots.network_png(results["network"]["layers"], _network_title(results["network"]))
    for m, r in models.items():
        title = f"{m} ({_scope(results)})"
        out[f"confusion_{m}.png"] = (plots.multilabel_confusion_png(r["test"]["confusion"], names, title)
                                     if results["task"]["kind"] == "multi_label" else
                                     plots.confusion_png(r["test"]["confusion"], names, title))
    shap = results.get("shap") or {}
    gradient = [m for m, e in shap.items() if "features" in e][:1]  # the saved model's (one figure set)
    for model in gradient:
        feats = shap[model]["features"]
        out["shap_features.png"] = plots.importance_png([f for f, _ in feats], [v for _, v in feats],
                                                        f"{model}: original features (PCA mapped back)")
        comps = shap[model]["components"]
        out["shap_components.png"] = plots.importance_png([f for f, _ in comps], [v for _, v in comps],
                                                          f"{model}: model inputs (PCA components)")
        for group, g in shap[model]["mps"].items():
            out[f"shap_{group}.png"] = plots.mps_heatmap_png(np.asarray(g["values"]), g["wf_cycles_per_hz"],
                                                             g["wt_hz"], f"{model} attribution over {group}")
    for model in (m for m, e in shap.items() if "features" not in e):  # TreeSHAP: on the components alone
        comps = shap[model]["components"]
        out[f"shap_{model}.png"] = plots.importance_png([f for f, _ in comps], [v for _, v in comps],
                                                        f"{model}: PCA components (TreeSHAP)")
    for model, imp in (results.get("importances") or {}).items():
        comps = imp["components"]
        out[f"importance_{model}.png"] = plots.importance_png([f for f, _ in comps], [v for _, v in comps],
                                                              f"{model}: PCA components",
                                                              imp["method"].split(",")[0])
        if imp.get("features"):  # mapped back through the PCA to the original columns (explain.importances)
            feats = imp["features"]
            out[f"importance_{model}_features.png"] = plots.importance_png(
                [f for f, _ in feats], [v for _, v in feats], f"{model}: original features (PCA mapped back)",
                imp.get("features_axis", "importance"))
    out.update(eda_figures(results))
    return out


def _top(per_comparison: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {label: d["rows"][:TOP_DIFFERENCES] for label, d in per_comparison.items()}


def map_mistakes(results: dict[str, Any], clip_ids: list[str] | None = None) -> tuple[np.ndarray, str]:
    """(mask over a map's clips: misclassified by the model of record, legend text) from the stored predictions.

    ``clip_ids``: the map's clips (default: the model input's map).
    """
    clip_ids = results["eda"]["map"]["clip_id"] if clip_ids is None else clip_ids
    model, wrong = mistakes(results)
    wrong_ids = {m["clip_id"] for m in wrong}
    return np.array([c in wrong_ids for c in clip_ids], dtype=bool), f"misclassified, {model} ({_scope(results)})"


def eda_figures(results: dict[str, Any]) -> dict[str, bytes]:
    """The EDA section's PNGs: effect sizes per group, correlation heatmaps, the map of the clips."""
    eda = results.get("eda")
    if not eda:
        return {}
    out = {}
    for group, per in eda["differences"].items():
        tables = _top(per)
        if any(tables.values()):
            out[f"eda_differences_{group}.png"] = plots.effect_sizes_png(
                tables, f"{group}: the {TOP_DIFFERENCES} values that differ most between classes")
    for group, c in eda["correlations"].items():
        if "matrix" in c:
            order = c["order"]
            out[f"eda_correlation_{group}.png"] = plots.correlation_png(
                [c["names"][i] for i in order], np.asarray(c["matrix"])[np.ix_(order, order)],
                f"{group}: Spearman correlation over {c['n']} clips (clustered order)")
    m = eda["map"]
    if "xy" in m:
        wrong, legend = map_mistakes(results)
        out["eda_map.png"] = plots.clip_map_png(np.asarray(m["xy"]), m["label"], wrong,
                                                f"The clips in 2-D ({m['method']}, perplexity {m['perplexity']:.0f})",
                                                legend)
    out.update(study_figures(results))
    return out


def _ranking_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ranking's rows as the bar plot reads them: the group in the name, q over the whole list."""
    return [{**r, "name": f"{r['group']}: {r['name']}", "q": r["q_all"]} for r in rows]


def study_figures(results: dict[str, Any]) -> dict[str, bytes]:
    """The study's figures: the one ranking across groups, MPS t-value heatmaps per signal, a map per embedder.

    A report of a run made before these existed (an ``eda`` without their keys) has none of them.
    """
    eda = results["eda"]
    out = {}
    ranking = {label: _ranking_rows(r["rows"]) for label, r in (eda.get("ranking") or {}).items()}
    if any(ranking.values()):
        out["eda_ranking.png"] = plots.effect_sizes_png(
            ranking, f"The {TOP_RANKING} values of every named group with the largest |t|", stat="t")
    for group, m in (eda.get("mps_t") or {}).items():
        grids = {label: np.array(g, dtype=np.float64) for label, g in m["t"].items()}  # None → NaN: untested
        out[f"eda_mps_t_{group}.png"] = plots.mps_t_png(grids, m["wf_cycles_per_hz"], m["wt_hz"],
                                                        f"{group}: Welch's t of each modulation cell")
    for column, m in (eda.get("embedder_maps") or {}).items():
        if "xy" in m:
            wrong, legend = map_mistakes(results, m["clip_id"])
            out[f"eda_map_{column}.png"] = plots.clip_map_png(
                np.asarray(m["xy"]), m["label"], wrong,
                f"{column} alone in 2-D ({m['method']}, perplexity {m['perplexity']:.0f})", legend)
    return out


def _scope(results: dict[str, Any]) -> str:
    ev = results.get("evaluation") or {}
    return "out-of-fold, all clips" if ev.get("method") == "cross_validation" else "held-out test split"


def _intervals(results: dict[str, Any], model: str) -> dict[str, Any]:
    return ((results.get("evaluation") or {}).get("models") or {}).get(model, {}).get("intervals") or {}


def metrics_section(results: dict[str, Any]) -> str:
    """Every model's figures with their 95 % intervals, how they were obtained, and the label-noise caveat."""
    kind = results["task"]["kind"]
    adj = results.get("adjusted_accuracy") or {}
    ev = results.get("evaluation") or {}
    rows = []
    for name, r in results["models"].items():
        m, ci = r["test"], _intervals(results, name)
        row: list[Any] = [name + (" (model of record)" if name == ev.get("chosen") else ""), m.get("n")]
        for metric, _, key in METRICS:
            # single-label micro F1 is the accuracy (every clip has one prediction and one label)
            key = key or ("accuracy_wilson" if metric == "micro_f1" and kind != "multi_label" else None)
            row.append(_with_interval(m.get(metric), ci.get(key) if key else None))
        best = m.get("max_accuracy")
        before = (m.get("calibration_before") or {}).get("ece")
        ece = m["calibration"].get("ece")
        row += [ece if before is None or ece is None else f"{ece:.3f} ({before:.3f})", r.get("val_score"),
                "–" if best is None else f"{best:.3f} at {m['max_accuracy_threshold']:.2f}"]
        if adj:
            row += [_accuracy_note(adj.get(name)), _accuracy_note((adj.get(name) or {}).get("max_accuracy"))]
        rows.append(row)
    selection = f"val. score ({ev['select_by']}, --select-by)" if ev.get("select_by") else "val. score"
    header = ["model", "clips", *[h for _, h, _ in METRICS], "ECE (before its map)", selection, "max. accuracy (threshold chosen on these predictions: optimistic)"]
    header += ["adjusted accuracy", "adjusted max. accuracy (the study's: acc/a)"] if adj else []
    parts = [f"<h2>Metrics ({html.escape(_scope(results))})</h2>"]
    if ev.get("description"):
        parts.append(f"<p class='note'>{html.escape(ev['description'])}</p>")
    parts.append(_table(header, rows))
    micro = "Single-label micro F1 equals the accuracy, so it shares the Wilson interval. "
    parts.append("<p class='note'>In brackets: 95 % intervals. Accuracy: Wilson's score interval over clips "
                 "(<code>learn.metrics.wilson</code>) and a bootstrap that resamples whole recordings; ROC AUC and "
                 "macro F1: the same bootstrap. " + (micro if kind != "multi_label" else "")
                 + "Balanced accuracy, mAP and ECE are shown without an interval; on a small test set read them "
                   "with the accuracy's interval in mind, and ECE with the clip counts of the calibration plot.</p>")
    per_fold = {m: v.get("per_fold") for m, v in (ev.get("models") or {}).items() if v.get("per_fold")}
    if per_fold:
        chosen = ev.get("chosen") if ev.get("chosen") in per_fold else next(iter(per_fold))
        parts += [f"<h3>Per fold ({html.escape(chosen)})</h3>",
                  _table(["fold", "clips", "ROC AUC", "accuracy", "macro F1"],
                         [[ev["fold_names"][f["fold"]] if ev.get("fold_names") else f["fold"] + 1, f["n"],
                           f.get("roc_auc"), f.get("accuracy"), f.get("macro_f1")]
                          for f in per_fold[chosen]])]
    parts.append("<p class='note'>Max. accuracy: the best accuracy over decision thresholds on the same clips "
                 "(binary tasks), as the study reported it; optimistic, since the threshold is fitted to the clips "
                 "it is scored on.</p>")
    parts.append("<h3>Label noise</h3><p class='note'>" + NOISY_LABELS)
    if adj:
        first = next(iter(adj.values()))
        source = ("the label accuracy assumed with <code>--assumed-label-accuracy</code>"
                  if first["label_accuracy"]["method"] == "assumed" else "the audit's label-accuracy estimate")
        parts[-1] += ("<b>Adjusted accuracy</b> (last columns), two figures from " + source + " "
                      + html.escape(json.dumps(first["label_accuracy"])) + ". <b>Noise model</b>: "
                      + html.escape(first["formula"]) + " <b>acc/a</b>: " + html.escape(first["study_ratio_formula"])
                      + "</p>")
    elif results.get("adjustment_note"):
        parts[-1] += html.escape(results["adjustment_note"]) + "</p>"
    else:
        parts[-1] += ("To see the accuracy against correct labels, review a random sample of clips "
                      "(<code>acoustic-env audit</code>, then <code>audit-estimate</code>) and train with "
                      "<code>--label-accuracy</code>.</p>")
    return "\n".join(parts)


def labels_changed_section(cmp: dict[str, Any] | None) -> str:
    """What the labels changed (``compare.compare``): how many targets differ from the table's and from the
    previous model's, and both models of record on the clips whose label did not change (empty when the run used
    the table's labels and replaced no model)."""
    if not cmp:
        return ""
    counts = []
    if cmp["table"]:
        t = cmp["table"]
        counts.append(f"The label list <code>{html.escape(t['uri'])}</code> (sha256 {html.escape(t['sha256'][:12])}) "
                      f"lists {t['clips']} clips and changes the label of {t['changed']} of them against the table.")
    prev = cmp["previous"]
    if prev and "changed" in prev:
        before = prev["label_list"]
        counts.append(f"Against the previous model of record (run <code>{html.escape(prev['run_id'])}</code>, "
                      f"{html.escape(prev['model'])}, trained on "
                      + (f"<code>{html.escape(before['uri'])}</code>" if before else "the table's labels")
                      + f"): {prev['changed']} of the {prev['both']} clips both learnt from have another label; "
                      f"{prev['only_new']} clips are new, {prev['only_previous']} left out.")
    parts = ["<h2 id='labels-changed'>What the labels changed</h2>",
             "<p class='note'>" + " ".join(counts) + "</p>" if counts else ""]
    u = cmp["unchanged"]
    if u and u["difference"] is not None:
        parts.append(_table(["model of record", "clips", cmp["metric"]], [
            [f"previous: {prev['model']}, run {prev['run_id']}", u["clips"],
             _with_interval(u["previous"], u["previous_interval"])],
            [f"this run: {cmp['model']}", u["clips"], _with_interval(u["new"], u["new_interval"])],
            ["difference (this run - previous)", u["clips"],
             _with_interval(u["difference"], u["difference_interval"])]]))
        parts.append("<p class='note'>Each model's own held-out predictions (out-of-fold, or the test split), scored "
                     "on the clips both scored whose label is the same in both runs: a changed label would score the "
                     "two against different truths. Intervals: a paired bootstrap of "
                     f"{u['replicates']} replicates that draws whole groups and scores both models on each draw.</p>")
    if cmp["note"]:
        parts.append(f"<p class='note'>{html.escape(cmp['note'].capitalize())}.</p>")
    return "\n".join(parts)


def balance_section(results: dict[str, Any]) -> str:
    """What each model did about class balance, and (single-label) every model's recall per class: a rare class
    that a model learnt to never predict shows as a 0 there, where the accuracy hardly moves."""
    balance, models, task = results.get("balance") or {}, results["models"], results["task"]
    asked = [f"--class-weight {balance.get('class_weight', 'none')}"] + (
        ["--balanced-sampler"] if balance.get("balanced_sampler") else [])
    if resample := balance.get("resample"):  # learn/augment.py: each model's training rows, never a scored one
        asked += [f"--resample-per-class {resample['per_class']} --augment-noise {resample['noise']:g} "
                  f"--augment-pitch-shift {resample['pitch_shift']}"]
    parts = ["<h2>Class balance</h2>",
             f"<p class='note'>Asked for: <code>{html.escape(' '.join(asked))}</code>. Unbalanced, a class of a few "
             "per cent costs a few per cent of a model's loss, so never predicting it is cheap; balanced, each "
             "class weighs alike (see the train guide, Class balance).</p>",
             _table(["model", "class balance"], [[m, (balance.get("models") or {}).get(m, "none")] for m in models])]
    if task["kind"] == "single_label":
        first = next(iter(models.values()))["test"]["per_class"]
        parts += [f"<h3>Recall per class ({html.escape(_scope(results))})</h3>",
                  _table(["class", "clips", *models],
                         [[c, first[c]["support"], *[r["test"]["per_class"][c]["recall"] for r in models.values()]]
                          for c in task["class_names"]])]
    return "\n".join(parts)


def _record_model(results: dict[str, Any], candidates: Any) -> str:
    """The model the figures are about: the saved one, else the model of record, else the MLP, else the first."""
    ev = results.get("evaluation") or {}
    names = list(candidates)
    return next((m for m in (ev.get("saved_model"), ev.get("chosen"), "mlp") if m in names), names[0])


def mistakes(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(model, all its misclassified clips, most confident mistake first) from the stored predictions."""
    pred = results.get("predictions") or {}
    if not pred.get("proba"):
        return "", []
    model = _record_model(results, pred["proba"])
    names = results["task"]["class_names"]
    p, y = np.asarray(pred["proba"][model], dtype=float), np.asarray(pred["y"])
    out = []
    if results["task"]["kind"] == "multi_label":
        guess = p >= 0.5
        wrong = np.flatnonzero((guess != y.astype(bool)).any(axis=1))
        margin = np.abs(p - 0.5).max(axis=1) if len(p) else np.zeros(0)
        for i in wrong:
            out.append({"i": int(i), "given": [names[j] for j in np.flatnonzero(y[i])],
                        "predicted": [names[j] for j in np.flatnonzero(guess[i])], "confidence": float(margin[i])})
    else:
        guess = p.argmax(axis=1)
        for i in np.flatnonzero(guess != y):
            out.append({"i": int(i), "given": [names[y[i]]], "predicted": [names[guess[i]]],
                        "confidence": float(p[i, guess[i]]), "p_given": float(p[i, y[i]])})
    out.sort(key=lambda m: -m["confidence"])
    for m in out:
        i = m.pop("i")
        m.update({k: pred[k][i] for k in ("clip_id", "uri", "start_s", "end_s", "group")})
        m["source"] = source_url(m["clip_id"], m["group"])
    return model, out


def mistakes_section(results: dict[str, Any], report_uri: str, limit: int = MAX_MISTAKES) -> str:
    """The misclassified clips with a player and a spectrogram each (assets under ``report/assets/``)."""
    model, every = mistakes(results)
    if not model:
        return ""
    wrong, more = every[:limit], max(0, len(every) - limit)
    n = len(results["predictions"]["y"])
    head = (f"<h2 id='mistakes'>Misclassified clips ({len(every)} of {n}, {html.escape(model)}, "
            f"{_scope(results)})</h2>"
            "<p class='note'>Most confident mistakes first. Listen: some are the model's errors, some are wrong "
            "labels that the model got right (the review page of <code>acoustic-env audit</code> records which).</p>")
    if not wrong:
        return head + "<p>None.</p>"
    cards = []
    for m in wrong:
        assets = write_assets(m, report_uri)
        link = (f" <a href='{html.escape(m['source'])}' target='_blank' rel='noopener'>source</a>"
                if m["source"] else "")
        p_given = f", p(given) {m['p_given']:.3f}" if "p_given" in m else ""
        media = (f"<img src='{html.escape(assets['image'])}' alt='spectrogram of {html.escape(m['clip_id'])}'>"
                 f"<audio controls preload='none' src='{html.escape(assets['audio'])}'></audio>"
                 if assets["audio"] else f"<p class='note'>audio unavailable: {html.escape(assets['error'])}</p>")
        cards.append(f"<div class='clip'><div class='id'>{html.escape(m['clip_id'])}{link}</div>{media}"
                     f"<div>given <b>{html.escape(', '.join(m['given']) or '(none)')}</b>, predicted "
                     f"<b>{html.escape(', '.join(m['predicted']) or '(none)')}</b> "
                     f"(p {m['confidence']:.3f}{p_given})</div></div>")
    tail = f"<p class='note'>{more} more not shown.</p>" if more else ""
    return head + "<div class='clips'>" + "".join(cards) + "</div>" + tail


def columns_section(results: dict[str, Any]) -> str:
    """Which feature columns went in (width, PCA) and which were left out, with the reason."""
    prep = {p["group"]: p for p in results.get("preprocessing") or []}
    excluded = results["counts"].get("excluded_columns") or {}
    rows = [[c, "used", prep.get(c, {}).get("dim"), prep.get(c, {}).get("components"), prep.get(c, {}).get("variance"),
             ""] for c in results["groups"]]
    rows += [[c, "left out", None, None, None, why] for c, why in excluded.items()]
    return ("<h2>Feature columns</h2>"
            + _table(["column", "", "values", "PCA components", "variance kept", "why left out"], rows,
                     ["used"] * len(results["groups"]) + ["left-out"] * len(excluded))
            + "<p class='note'>Columns from embedders with random weights are left out unless "
              "<code>--include-random-weights</code>; tagger scores (<code>*_scores</code>) are outputs trained on "
              "AudioSet's labels, never features.</p>")


def gap_section(results: dict[str, Any]) -> str:
    """The score each model was chosen on beside its held-out score (``jobs.train.gap``), and what the pair is."""
    gap = results.get("gap")
    if not gap:
        return ""
    rows = [[m, v["selection"], v["held_out"], ("html", f"{v['gap']:+.3f}")] for m, v in gap["models"].items()]
    return (f"<h3>Overfitting: {html.escape(gap['selection'])} against {html.escape(gap['held_out'])} "
            f"({html.escape(gap['metric'])})</h3>"
            + (_table(["model", gap["selection"], gap["held_out"], "gap"], rows) if rows else "")
            + f"<p class='note'>{html.escape(gap['note'])} A positive gap is the optimism of the choice plus the noise "
              "of two small samples: read it with the held-out figure's interval above.</p>")


def _network_title(network: dict[str, Any]) -> str:
    return f"MLP ({'the saved model' if network['saved'] else 'compared, not the saved model'})"


def network_section(results: dict[str, Any]) -> str:
    """The trained network's layers, read from its torch module: a drawing and a table."""
    network = results.get("network")
    if not network:
        return ""
    rows = [[b["name"], b["units"], ", ".join(b["after"])] for b in plots.network_blocks(network["layers"])]
    return (f"<h2>The network: {html.escape(_network_title(network))}</h2>"
            + _img("network.png", "the network's layers")
            + _table(["layer", "units", "then"], rows)
            + "<p class='note'>Read from the trained torch module (<code>learn.mlp.layer_table</code>): each "
              "linear layer's output units, then its activation and dropout (dropout acts in training only). The "
              "inputs are the PCA components of the feature groups (Preprocessing, below).</p>")


def params_section(results: dict[str, Any]) -> str:
    """The chosen hyper-parameters and every search trial, values exactly as used."""
    search = results.get("search") or {}
    params = search.get("params") or {}
    parts = ["<h2>Hyper-parameters</h2>",
             f"<p class='note'>{html.escape(search.get('method', ''))}</p>",
             _table(["parameter", "value"], [[k, ("html", _exact(v))] for k, v in params.items()])]
    trials = search.get("trials") or []
    if trials:
        keys = [k for k in trials[0] if k != "error"]
        parts += [f"<h3>Search: {len(trials)} trial(s) in {search.get('wall_s', 0):.0f} s</h3>",
                  _table(keys + ["error"], [[("html", _exact(t.get(k))) if k in params else t.get(k) for k in keys]
                                            + [t.get("error")] for t in trials])]
    parts += [_nested_trials(m, n) for m, n in (search.get("nested") or {}).items() if n.get("trials")]
    return "\n".join(parts)


def _nested_trials(model: str, nested: dict[str, Any]) -> str:
    """Every setting one model's nested search tried in each outer fold (the defaults first), its pooled inner score
    and the one kept, under the space it was drawn from: folded, as it runs to searches x outer folds rows."""
    names = list(nested["trials"][0][0]["params"])
    rows, classes = [], []
    for fold, (tried, chosen) in enumerate(zip(nested["trials"], nested["chosen"]), 1):
        for i, t in enumerate(tried):
            rows.append([fold, "defaults" if i == 0 and nested.get("space") else i,
                         *[("html", _exact(t["params"].get(k))) for k in names], t["score"],
                         "yes" if t["params"] == chosen else ""])
            classes.append("used" if t["params"] == chosen else "")
    space = "; ".join(f"{k}: {r}" for k, r in (nested.get("space") or {}).items())
    return (f"<details><summary><b>Nested search of {html.escape(model)}</b>: {len(rows)} settings tried over "
            f"{nested['outer_folds']} outer folds ({nested['metric']} score)"
            + (f", from {html.escape(space)}" if space else "") + "</summary>"
            + _table(["outer fold", "trial", *names, "inner score", "chosen"], rows, classes) + "</details>")


def _num(v: float) -> tuple[str, str]:
    """A statistic to four significant figures (p-values of 1e-12 and means of 0.0004 stay readable)."""
    return ("html", f"{v:.4g}")


def _img(name: str, alt: str) -> str:
    return f"<img src='{html.escape(name)}' alt='{html.escape(alt)}'>"


def _differences_html(group: str, per: dict[str, dict[str, Any]], images: list[str]) -> str:
    """One group's top values per comparison (a table each), its bar plot, and what was left out and why."""
    first = next(iter(per.values()))
    leaders = ", ".join(f"{r['name']} (g {r['g']:+.2f})" for r in first["rows"][:3])
    parts = []
    for label, d in per.items():
        a, _, b = label.partition(" vs ")
        parts.append(f"<h4>{html.escape(label)} <span class='ci'>({d['n_in']} vs {d['n_out']} clips)</span></h4>")
        if d.get("skipped"):
            parts.append(f"<p class='note'>Not tested: {html.escape(d['skipped'])}.</p>")
            continue
        parts.append(_table(["value", f"mean, {a}", f"mean, {b}", "Hedges' g", "Welch's t", "p", "q (BH)"],
                            [[r["name"], _num(r["mean_in"]), _num(r["mean_out"]), ("html", f"{r['g']:+.3f}"),
                              _num(r["t"]), _num(r["p"]), _num(r["q"])] for r in d["rows"][:TOP_DIFFERENCES]]))
        left = [f"{len(d['constant'])} constant within both sides ({', '.join(d['constant'][:8])}"
                f"{', ...' if len(d['constant']) > 8 else ''})" if d["constant"] else "",
                f"{d['non_finite_rows']} clip(s) with non-finite values" if d["non_finite_rows"] else ""]
        if any(left):
            parts.append(f"<p class='note'>Left out: {html.escape('; '.join(x for x in left if x))}.</p>")
    name = f"eda_differences_{group}.png"
    if name in images:
        parts.append(_img(name, f"effect sizes of {group}"))
    n_values = first["n_values"]
    is_open = " open" if n_values <= MAX_HEATMAP else ""
    return (f"<details{is_open}><summary><b>{html.escape(group)}</b> ({n_values} values)"
            + (f": {html.escape(leaders)}" if leaders else "") + "</summary>" + "".join(parts) + "</details>")


def _correlations_html(eda: dict[str, Any], images: list[str]) -> str:
    """Heatmaps of the named, narrow groups with their most correlated pairs; the other groups and why not."""
    parts, skipped = [], []
    for group, c in eda["correlations"].items():
        if "matrix" not in c:
            skipped.append(f"{group}: {c['skipped']}")
            continue
        parts.append(f"<h4>{html.escape(group)}</h4>")
        if c["constant"]:
            skipped.append(f"{group}: left out {len(c['constant'])} constant value(s) ({', '.join(c['constant'])})")
        parts.append(_table(["index", "and index", "Spearman's rho"],
                            [[p["a"], p["b"], ("html", f"{p['rho']:+.3f}")] for p in c["top_pairs"]]))
        parts.append(_img(f"eda_correlation_{group}.png", f"correlation heatmap of {group}"))
    note = ("<p class='note'>Spearman's rank correlation between the named indices of each group (robust to their "
            "skew and mixed units), in an order that puts correlated indices together (average-linkage clustering "
            "on 1 − |rho|). A pair near ±1 measures the same thing twice. The most correlated pairs come first.</p>")
    tail = ("<p class='note'>No heatmap for: " + html.escape("; ".join(skipped)) + ".</p>") if skipped else ""
    return "<h3>Correlations between indices</h3>" + note + "".join(parts) + tail


def _map_html(results: dict[str, Any], eda: dict[str, Any]) -> str:
    m = eda["map"]
    if "xy" not in m:
        return f"<h3>Map of the clips</h3><p class='note'>No map: {html.escape(m['skipped'])}.</p>"
    wrong, _ = map_mistakes(results)
    scored = set((results.get("predictions") or {}).get("clip_id") or [])
    n_scored = sum(c in scored for c in m["clip_id"])
    pca = f", reduced to {m['pca']} principal components first" if m.get("pca") else ""
    capped = (f" A random {len(m['clip_id'])} of the clips are shown (at most {MAX_MAP_POINTS}, t-SNE's cost)."
              if len(m["clip_id"]) < eda["of"] else "")
    unscored = (f" Only {n_scored} of the {len(m['clip_id'])} clips shown were scored by a model that had not seen "
                "them (the others trained it), so only those can be ringed." if n_scored < len(m["clip_id"]) else "")
    return ("<h3>Map of the clips</h3>" + _img("eda_map.png", "t-SNE map of the clips")
            + f"<p class='note'>t-SNE (scikit-learn, fixed seed, perplexity {m['perplexity']:.0f}) of the "
              f"{len(m['clip_id'])} clips in the model's own input space ({m['dims']} values: each group standardised, "
              f"PCA-reduced and scaled as the model saw it{pca}), coloured by the given label. Ringed: the "
              f"{int(wrong.sum())} clips the model of record got wrong.{unscored}{capped} Distances between "
              "far-apart clusters mean little in t-SNE; neighbourhoods do.</p>")


def _ranking_html(eda: dict[str, Any], images: list[str]) -> str:
    """The study's one ranking: a table per comparison of the top values across every named group, by |t|."""
    parts = []
    for label, r in (eda.get("ranking") or {}).items():
        a, _, b = label.partition(" vs ")
        parts.append(f"<h4>{html.escape(label)} <span class='ci'>({r['n_tested']} values tested)</span></h4>")
        parts.append(_table(["group", "value", f"mean, {a}", f"mean, {b}", "Welch's t", "p", "q (list)", "q (group)",
                             "Hedges' g"],
                            [[x["group"], x["name"], _num(x["mean_in"]), _num(x["mean_out"]), _num(x["t"]),
                              _num(x["p"]), _num(x["q_all"]), _num(x["q"]), ("html", f"{x['g']:+.3f}")]
                             for x in r["rows"]]))
    if not parts:
        return ""
    if "eda_ranking.png" in images:
        parts.append(_img("eda_ranking.png", "the values with the largest |t| across every named group"))
    groups = next(iter(eda["ranking"].values()))["groups"]
    return (f"<h3>One ranking across signals and index families</h3><p class='note'>As the study ranked them: every "
            f"value of the named groups ({html.escape(', '.join(groups))}) in one list, ordered by |Welch's t|, the "
            f"top {TOP_RANKING}. <b>q (list)</b> is corrected over every value of the list, <b>q (group)</b> within "
            "the value's own group (the tables above). Bars starred where q (list) &lt; 0.05.</p>" + "".join(parts))


def _study_maps_html(results: dict[str, Any], eda: dict[str, Any], images: list[str]) -> str:
    """MPS t-value heatmaps per signal and one map per embedding column, with what they show."""
    parts = []
    mps = [g for g in (eda.get("mps_t") or {}) if f"eda_mps_t_{g}.png" in images]
    if mps:
        parts.append("<h3>Modulation power spectrum: t-values per signal</h3><p class='note'>Welch's t of each cell "
                     "of the MPS (spectral × temporal modulation, the column's own axes), one heatmap per signal and "
                     "panel per comparison, on one colour scale symmetric about 0; blank cells were constant. Every "
                     "value is in <code>eda.json</code> (<code>mps_t</code>).</p>")
        parts += [_img(f"eda_mps_t_{g}.png", f"t-values of {g}") for g in mps]
    maps = eda.get("embedder_maps") or {}
    drawn = [c for c in maps if f"eda_map_{c}.png" in images]
    if drawn:
        capped = any(len(maps[c]["clip_id"]) < maps[c]["of"] for c in drawn)
        parts.append("<h3>Map per embedder</h3><p class='note'>t-SNE of each embedding column alone (each dimension "
                     "standardised, PCA first when wider than 50), coloured by the given label and ringed where the "
                     "model of record was wrong, as the study drew one per embedder"
                     + (f"; a seeded sample of {len(maps[drawn[0]]['clip_id'])} clips (t-SNE's cost)" if capped else "")
                     + ".</p>")
        parts += [_img(f"eda_map_{c}.png", f"t-SNE map of {c}") for c in drawn]
    skipped = [f"{c}: {m['skipped']}" for c, m in maps.items() if "xy" not in m]
    if skipped:
        parts.append(f"<p class='note'>No map for {html.escape('; '.join(skipped))}.</p>")
    return "".join(parts)


def eda_section(results: dict[str, Any], images: list[str]) -> str:
    """The exploratory analysis: differences per group (tables and bars), correlations, the map of the clips."""
    eda = results.get("eda")
    if not eda:
        return ""
    parts = [f"<h2 id='eda'>Exploratory analysis ({eda['n']} clips)</h2>",
             ("<p class='note'>Which values of the features the model used separate the classes, before any model. "
              "Each value is compared between the clips of a class and the rest (one-vs-rest; a binary task: first "
              "class against second) with Welch's t-test; <b>Hedges' g</b> is the difference of the means in pooled "
              "standard deviations (0.2 small, 0.5 medium, 0.8 large), <b>q</b> the p-value corrected for the "
              "number of values tested in the group (Benjamini-Hochberg, false discovery rate). Sorted by |g|; the "
              f"top {TOP_DIFFERENCES} per group are shown, every value is in <code>eda.json</code>. Measured "
              "against the given labels, which are noisy.</p>")]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in eda["notes"]]
    parts.append("<h3>Differences between classes, by feature group</h3>")
    parts += [_differences_html(g, per, images) for g, per in eda["differences"].items()]
    parts.append(_ranking_html(eda, images))
    parts.append(_correlations_html(eda, images))
    parts.append(_map_html(results, eda))
    parts.append(_study_maps_html(results, eda, images))
    return "\n".join(parts)


def duplicates_section(counts: dict[str, Any]) -> str:
    """What the near-duplicate guard found and which groups it merged, with the clip pairs that made it."""
    if not counts:
        return ""
    if counts.get("skipped"):
        return f"<p class='note'>Near-duplicate guard skipped: {html.escape(counts['skipped'])}.</p>"
    rule = (html.escape(counts["rule"]) if counts.get("rule")  # chunk mode states its rule
            else f"mean cosine distance &le; {counts['threshold']:g} over {html.escape(', '.join(counts['columns']))}")
    head = (f"<p class='note'>Near-duplicate guard ({rule}): {counts['pairs']} pair(s), "
            f"{counts.get('pairs_across_groups', 0)} across groups")
    if not counts.get("groups_merged"):
        return head + "; no groups merged.</p>"
    return (head + f"; {counts['groups_before']} groups merged into {counts['groups_after']} so that copies stay "
            "on one side of every fold or split:</p><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in merge_lines(counts, limit=50)) + "</ul>")


def grid_section(grid: dict[str, Any] | None) -> str:
    """The comparison grid: every cell's model of record with its interval, how it was chosen, and the caveat."""
    if not grid:
        return ""
    rows = [[c["embedder"], c["signals"], ", ".join(c["groups"]), c["model"],
             _with_interval(c["roc_auc"], c["roc_auc_interval"]), c["seconds"]] for c in grid["cells"]]
    w = grid["winner"]
    return ("<h2>Grid: embedder x signals</h2>"
            f"<p class='note'>{len(grid['cells'])} cells in {grid['wall_s']:.0f} s. Each cell is a cross-validation on "
            "the same outer folds of the models compared here, each with its own nested search, on the cell's "
            "feature groups; its figure is that of its model of record (pooled out-of-fold ROC AUC, group "
            f"bootstrap interval). The winner, <b>{html.escape(w['embedder'])} x {html.escape(w['signals'])}</b> "
            f"({html.escape(w['model'])}), was trained on its groups and saved; the figures above are its. Being the "
            "best of the cells on the same folds, its figure is optimistic by that choice: compare intervals, "
            "not just the ranking.</p>"
            + _table(["embedder", "signals", "feature groups", "model of record", "ROC AUC", "seconds"], rows,
                     ["used" if c["winner"] else "" for c in grid["cells"]])
            + _img("grid.png", "the grid's ROC AUC per cell"))


def feature_sets_section(evaluation: dict[str, Any]) -> str:
    """Model x feature set: each model's mean inner score per set and how many outer folds chose it, and the saved
    model's own choice (empty without a feature-set search)."""
    fs = evaluation.get("feature_sets")
    if not fs:
        return ""
    names = list(fs["sets"])
    rows = [[m, *[f"{c['inner_score']:.3f} ({c['chosen_in']})" if c["inner_score"] is not None else "–"
                  for c in (per[s] for s in names)]] for m, per in fs["table"].items()]
    saved = fs.get("saved")
    chose = (f" The saved {html.escape(saved['model'])} chose <b>{html.escape(saved['set'])}</b> on the inner folds of "
             f"all clips and reads only its groups ({html.escape(', '.join(saved['groups']))}): predict, serve and "
             "annotate compute only those." if saved else "")
    return ("<h2>Feature sets</h2><p class='note'>Each model chose its feature set in every outer fold by grouped "
            "cross-validation on that fold's training clips only (nested: the held-out fold never took part), at its "
            "default settings, then searched its own settings on that set; the out-of-fold figures above include "
            "that choice. Each cell: the set's pooled inner score (ROC AUC; mAP for multi-label tasks) averaged over "
            f"the outer folds, and in brackets the folds that chose it.{chose}</p>"
            + _table(["model", *names], rows)
            + "<p class='note'>" + html.escape("; ".join(f"{s}: {', '.join(g)}" for s, g in fs["sets"].items()))
            + "</p>")


def shuffled_section(contrast: dict[str, Any] | None) -> str:
    """``--compare-shuffled``: the model of record's figures on the grouped folds and on folds drawn clip by clip
    (``shuffled.py``), and why the grouped one is the figure of record (empty without it)."""
    if not contrast:
        return ""
    sides = ((f"{grouped_words(contrast)} (of record)", contrast["grouped"]),
             ("shuffled, clip by clip", contrast["shuffled"]))
    return ("<h2>Shuffled against grouped folds</h2><p class='note'>"
            f"{html.escape(contrast['model'])}, the model of record, cross-validated twice on {contrast['folds']} "
            "stratified folds with the same preprocessing, search and calibration: on the grouped folds of record, "
            "and on folds drawn clip by clip, as a split that ignores recordings draws them (the sourcing-sound "
            "study: 0.936 shuffled, 0.62 under its folds). The difference is what clips of one recording on both "
            "sides add: the shuffled figure is no estimate for new recordings.</p>"
            + _table(["folds", *(words for _, words in SHUFFLED_FIGURES)],
                     [[name, *(side[key] for key, _ in SHUFFLED_FIGURES)] for name, side in sides]))


def importances_section(importances: dict[str, dict[str, Any]], images: list[str]) -> str:
    """The linear models' coefficients and the forest's impurity importances beside SHAP: per group and per
    component (empty when no such model was compared)."""
    if not importances:
        return ""
    parts = ["<h2>Coefficient and impurity importances</h2><p class='note'>What each fitted model weighs, read from "
             "the model itself: logistic regression's |coefficients| on the standardised PCA components (averaged "
             "over classes), the forest's impurity (Gini) importances. Each model was fitted on the clips the saved "
             "model was fitted on; the shares sum each group's components. Then the original features (index, "
             "spectral statistic, MPS cell) they come to through the PCA (<code>learn/importances.py</code>).</p>"]
    for model, imp in importances.items():
        total = max(sum(imp["by_group"].values()), 1e-12)
        parts.append(_table(["group", f"share of {model} {imp['method']}"],
                            [[g, v / total] for g, v in imp["by_group"].items()]))
        if imp.get("features"):
            parts.append(_table(["original feature", f"{model}: {imp['features_method']}"],
                                imp["features"][:TOP_ORIGINAL]))
    parts.append("".join(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>"
                         for i in images if i.startswith("importance_")))
    return "\n".join(parts)


def render(results: dict[str, Any], images: list[str], mistakes_html: str = "") -> str:
    """The page as HTML text."""
    task, counts = results["task"], results["counts"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<title>acoustic-env: {html.escape(task['name'])}</title>"
             f"<link rel='icon' href='data:,'><style>{CSS}</style></head><body>",
             f"<h1>Task <code>{html.escape(task['name'])}</code> ({html.escape(task['kind'])}): "
             f"{html.escape(', '.join(task['class_names']))}</h1>",
             f"<p class='note'>Features: <code>{html.escape(results['features'])}</code>; groups: "
             f"{html.escape(', '.join(results['groups']))}. Run {html.escape(results['run_id'])}.</p>",
             "<h2>Data</h2>",
             _table(["split", *task["class_names"], "clips"],
                    [[s, *[c.get(k) for k in task["class_names"]], c["clips"]] for s, c in counts["splits"].items()]),
             "<p class='note'>" + html.escape(", ".join(f"{k}: {_plain(v)}" for k, v in counts.items()
                                                        if k not in ("splits", "excluded_columns", "duplicates")))
             + "</p>", duplicates_section(counts.get("duplicates") or {}),
             metrics_section(results), labels_changed_section(results.get("labels_changed")),
             shuffled_section((results.get("evaluation") or {}).get("shuffled")),
             gap_section(results), feature_sets_section(results.get("evaluation") or {}),
             grid_section(results.get("grid")),
             balance_section(results)]
    first = _record_model(results, results["models"])
    per_class = results["models"][first]["test"]["per_class"]
    parts += [f"<h3>{html.escape(first)} per class</h3>",
              _table(["class", "precision", "recall", "F1", "support"],
                     [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in per_class.items()])]
    parts.append("<h2>Figures</h2><p class='note'>Calibration: each point is labelled with its number of clips; "
                 "the bars below count the clips per probability bin.</p>"
                 + "".join(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>" for i in images
                           if not i.startswith(("shap", "importance_", "eda_", "grid", "network"))))
    parts.append(mistakes_html)
    if results.get("ablations"):
        parts += ["<h2>Feature-group ablations</h2>",
                  "<p class='note'>Each model retrained on a subset of the feature groups; same clips. "
                  "The first rows are the full models.</p>",
                  _table(["model", "groups", "ROC AUC", "balanced acc.", "macro F1", "mAP", "val. score"],
                         [[r["name"], ", ".join(r["groups"]), r["test"]["roc_auc"], r["test"]["balanced_accuracy"],
                           r["test"]["macro_f1"], r["test"]["map"], r.get("val_score")] for r in results["ablations"]])]
    shap = results.get("shap") or {}
    if shap:
        parts.append("<h2>SHAP attributions</h2><p class='note'>Mean |SHAP value| on held-out clips. For the "
                     "network, the preprocessing (standardise, PCA, scale) is folded into it so attributions land on "
                     "the original index names and modulation-grid cells; the trees' (XGBoost, forest) are on the "
                     "PCA components.</p>")
        for model, s in shap.items():
            if "by_group" in s:
                total = max(sum(s["by_group"].values()), 1e-12)
                parts.append(_table(["group", f"share of {model} attribution"],
                                    [[g, v / total] for g, v in s["by_group"].items()]))
        parts.append("".join(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>"
                             for i in images if i.startswith("shap")))
    parts.append(importances_section(results.get("importances") or {}, images))
    parts.append(eda_section(results, images))
    parts += [params_section(results), network_section(results), columns_section(results),
              "<h2>Preprocessing</h2>",
              _table(["group", "inputs", "components", "variance kept"],
                     [[p["group"], p["dim"], p["components"], p["variance"]] for p in results["preprocessing"]]),
              f"<p class='note'>Model artifact: <code>{html.escape(results['model_uri'])}</code> "
              "(<code>acoustic_env.load_model(uri).predict_proba(table)</code>).</p></body></html>"]
    return "\n".join(parts)


def write_report(uri: str, results: dict[str, Any]) -> str:
    """Write index.html, the PNGs, the misclassified clips' assets, metrics.json and eda.json; return the index."""
    pngs = figures(results)
    for name, data in pngs.items():
        _write(join(uri, name), data)
    slim = json.loads(json.dumps({k: v for k, v in results.items() if k not in ("predictions", "eda")}, default=str))
    for r in slim["models"].values():  # curves belong in the figures, not in the summary numbers
        r["test"].pop("roc_curves", None)
    # the text files name the table and the clips: any credentials in those URIs are written masked
    _write(join(uri, "metrics.json"), redact(json.dumps(slim, indent=2, sort_keys=True)).encode())
    if results.get("eda"):
        _write(join(uri, "eda.json"), redact(json.dumps(results["eda"])).encode())
    index = join(uri, "index.html")
    _write(index, redact(render(results, list(pngs), mistakes_section(results, uri))).encode())
    return index
