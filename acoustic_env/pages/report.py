"""The static report: ``report/index.html`` with its PNGs, clip assets and ``metrics.json``, written through fsspec.

One self-contained page that opens from disk in any browser (relative links,
inline CSS, no scripts, no fonts or anything else fetched from elsewhere).
This module decides what goes in each section and table (plain data); the
markup is in ``templates/report/`` (``index.html`` and one template per
section, filled by ``pages.templating``, autoescaped), so a section function
returns that template's HTML and the page template places the sections.

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

import json
from typing import Any

import numpy as np
import pyarrow as pa
from markupsafe import Markup

from acoustic_env.learn.duplicates import merge_lines
from acoustic_env.learn.eda import MAX_HEATMAP, MAX_MAP_POINTS, TOP_RANKING
from acoustic_env.pages import plots, templating
from acoustic_env.pages.review import source_url, write_assets
from acoustic_env.pages.templating import Adjusted, Interval, Plain, exact
from acoustic_env.storage import filesystem, join, redact
from acoustic_env.table import FeatureSet

#: The figures ``train --compare-shuffled`` sets side by side, as ``learn.metrics.headline`` names them, and their words.
SHUFFLED_FIGURES = (("roc_auc", "ROC AUC"), ("accuracy", "accuracy"), ("macro_f1", "macro F1"))


def grouped_words(contrast: dict[str, Any]) -> str:
    """How the evaluation's folds were drawn, in words (the console's and the report's)."""
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
#: Figures not listed in the Figures section: they sit in their own sections.
_OWN_SECTION = ("shap", "importance_", "eda_", "grid", "network")


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


def _plain(v: Any) -> str:
    """A count, or a small dict of counts, as text a person reads (no braces and quotes)."""
    if isinstance(v, dict):
        return "(" + ", ".join(f"{k} {_plain(x)}" for k, x in v.items()) + ")"
    if isinstance(v, (list, tuple)):
        return " + ".join(map(str, v))
    return str(v)


def _write(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


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
    """(mask over a map's clips: misclassified by the chosen model, legend text) from the stored predictions.

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


def _adjusted(adjusted: dict[str, Any] | None) -> Adjusted | str:
    """Both adjusted figures of one accuracy, named: the noise model's, then the study's ratio (empty: none)."""
    if not adjusted:
        return ""
    ratio = adjusted.get("study_ratio")
    return Adjusted(None if adjusted["adjusted"] is None else Interval(adjusted["adjusted"], adjusted["interval"]),
                    None if ratio is None else Interval(ratio, adjusted["study_ratio_interval"]))


def metrics_section(results: dict[str, Any]) -> Markup:
    """Every model's figures with their 95 % intervals, how they were obtained, and the label-noise caveat."""
    kind = results["task"]["kind"]
    adj = results.get("adjusted_accuracy") or {}
    ev = results.get("evaluation") or {}
    rows = []
    for name, r in results["models"].items():
        m, ci = r["test"], _intervals(results, name)
        row: list[Any] = [name + (" (chosen model)" if name == ev.get("chosen") else ""), m.get("n")]
        for metric, _, key in METRICS:
            # single-label micro F1 is the accuracy (every clip has one prediction and one label)
            key = key or ("accuracy_wilson" if metric == "micro_f1" and kind != "multi_label" else None)
            row.append(Interval(m.get(metric), ci.get(key) if key else None))
        best = m.get("max_accuracy")
        before = (m.get("calibration_before") or {}).get("ece")
        ece = m["calibration"].get("ece")
        row += [ece if before is None or ece is None else f"{ece:.3f} ({before:.3f})",
                m["calibration"].get("ece_floor"), r.get("val_score"),
                "–" if best is None else f"{best:.3f} at {m['max_accuracy_threshold']:.2f}"]
        if adj:
            row += [_adjusted(adj.get(name)), _adjusted((adj.get(name) or {}).get("max_accuracy"))]
        rows.append(row)
    selection = f"val. score ({ev['select_by']}, --select-by)" if ev.get("select_by") else "val. score"
    header = ["model", "clips", *[h for _, h, _ in METRICS], "ECE (before its map)",
              "ECE's floor (a calibrated model's as sharp, on these clips)", selection,
              "max. accuracy (threshold chosen on these predictions: optimistic)"]
    header += ["adjusted accuracy", "adjusted max. accuracy (the study's: acc/a)"] if adj else []
    per_fold = {m: v.get("per_fold") for m, v in (ev.get("models") or {}).items() if v.get("per_fold")}
    folds = None
    if per_fold:
        chosen = ev.get("chosen") if ev.get("chosen") in per_fold else next(iter(per_fold))
        folds = {"model": chosen,
                 "rows": [[ev["fold_names"][f["fold"]] if ev.get("fold_names") else f["fold"] + 1, f["n"],
                           f.get("roc_auc"), f.get("accuracy"), f.get("macro_f1")] for f in per_fold[chosen]]}
    adjusted = None
    if adj:
        first = next(iter(adj.values()))
        adjusted = {"assumed": first["label_accuracy"]["method"] == "assumed",
                    "label_accuracy": json.dumps(first["label_accuracy"]), "formula": first["formula"],
                    "study_ratio_formula": first["study_ratio_formula"]}
    return templating.render("report/metrics.html", scope=_scope(results), description=ev.get("description"),
                             header=header, rows=rows, multi_label=kind == "multi_label", per_fold=folds,
                             adjusted=adjusted, adjustment_note=results.get("adjustment_note"),
                             audioset=results["task"].get("audioset", False))


def labels_changed_section(cmp: dict[str, Any] | None) -> Markup | str:
    """What the labels changed (``compare.compare``): how many targets differ from the table's and from the
    previous model's, and both chosen models on the clips whose label did not change (empty when the run used
    the table's labels and replaced no model)."""
    if not cmp:
        return ""
    prev = cmp["previous"]
    u = cmp["unchanged"]
    unchanged = None
    if u and u["difference"] is not None:
        unchanged = {"replicates": u["replicates"], "rows": [
            [f"previous: {prev['model']}, run {prev['run_id']}", u["clips"],
             Interval(u["previous"], u["previous_interval"])],
            [f"this run: {cmp['model']}", u["clips"], Interval(u["new"], u["new_interval"])],
            ["difference (this run - previous)", u["clips"], Interval(u["difference"], u["difference_interval"])]]}
    return templating.render("report/labels_changed.html", table_list=cmp["table"],
                             previous=prev if prev and "changed" in prev else None, unchanged=unchanged,
                             metric=cmp["metric"], note=cmp["note"].capitalize() if cmp["note"] else "")


def balance_section(results: dict[str, Any]) -> Markup:
    """What each model did about class balance, and (single-label) every model's recall per class: a rare class
    that a model learnt to never predict shows as a 0 there, where the accuracy hardly moves."""
    balance, models, task = results.get("balance") or {}, results["models"], results["task"]
    asked = [f"--class-weight {balance.get('class_weight', 'none')}"] + (
        ["--balanced-sampler"] if balance.get("balanced_sampler") else [])
    if resample := balance.get("resample"):  # learn/augment.py: each model's training rows, never a scored one
        asked += [f"--resample-per-class {resample['per_class']} --augment-noise {resample['noise']:g} "
                  f"--augment-pitch-shift {resample['pitch_shift']}"]
    recall = None
    if task["kind"] == "single_label":
        first = next(iter(models.values()))["test"]["per_class"]
        recall = {"header": ["class", "clips", *models],
                  "rows": [[c, first[c]["support"], *[r["test"]["per_class"][c]["recall"] for r in models.values()]]
                           for c in task["class_names"]]}
    return templating.render("report/balance.html", asked=" ".join(asked), scope=_scope(results), recall=recall,
                             models=[[m, (balance.get("models") or {}).get(m, "none")] for m in models])


def duplicates_section(counts: dict[str, Any]) -> Markup | str:
    """What the near-duplicate guard found and which groups it merged, with the clip pairs that made it."""
    if not counts:
        return ""
    if counts.get("skipped"):
        return templating.render("report/duplicates.html", skipped=counts["skipped"])
    merged = counts.get("groups_merged")
    return templating.render("report/duplicates.html", skipped=None, rule=counts.get("rule"),
                             threshold=counts.get("threshold"), columns=counts.get("columns") or [],
                             pairs=counts["pairs"], across=counts.get("pairs_across_groups", 0),
                             groups_before=counts.get("groups_before"), groups_after=counts.get("groups_after"),
                             merges=merge_lines(counts, limit=50) if merged else [])


def grid_section(grid: dict[str, Any] | None) -> Markup | str:
    """The comparison grid: every cell's chosen model with its interval, how it was chosen, and the caveat."""
    if not grid:
        return ""
    rows = [[c["embedder"], c["signals"], ", ".join(c["groups"]), c["model"],
             Interval(c["roc_auc"], c["roc_auc_interval"]), c["seconds"]] for c in grid["cells"]]
    return templating.render("report/grid.html", cells=len(grid["cells"]), wall_s=grid["wall_s"],
                             winner=grid["winner"], rows=rows,
                             classes=["used" if c["winner"] else "" for c in grid["cells"]])


def feature_sets_section(evaluation: dict[str, Any]) -> Markup | str:
    """Model x feature set: each model's mean inner score per set and how many outer folds chose it, and the saved
    model's own choice (empty without a feature-set choice)."""
    fs = evaluation.get("feature_sets")
    if not fs:
        return ""
    names = list(fs["sets"])
    rows = [[m, *[f"{c['inner_score']:.3f} ({c['chosen_in']})" if c["inner_score"] is not None else "–"
                  for c in (per[s] for s in names)]] for m, per in fs["table"].items()]
    return templating.render("report/feature_sets.html", header=["model", *names], rows=rows,
                             saved=fs.get("saved"),
                             sets="; ".join(f"{s}: {', '.join(g)}" for s, g in fs["sets"].items()))


def shuffled_section(contrast: dict[str, Any] | None) -> Markup | str:
    """``--compare-shuffled``: the chosen model's figures on the grouped folds and on folds drawn clip by clip
    (``shuffled.py``), and why the grouped one is the reported figure (empty without it)."""
    if not contrast:
        return ""
    sides = ((f"{grouped_words(contrast)} (reported)", contrast["grouped"]),
             ("shuffled, clip by clip", contrast["shuffled"]))
    return templating.render("report/shuffled.html", model=contrast["model"], folds=contrast["folds"],
                             header=["folds", *(words for _, words in SHUFFLED_FIGURES)],
                             rows=[[name, *(side[key] for key, _ in SHUFFLED_FIGURES)] for name, side in sides])


def importances_section(importances: dict[str, dict[str, Any]], images: list[str]) -> Markup | str:
    """The linear models' coefficients and the forest's impurity importances beside SHAP: per group and per
    component (empty when no such model was compared)."""
    if not importances:
        return ""
    tables = []
    for model, imp in importances.items():
        total = max(sum(imp["by_group"].values()), 1e-12)
        tables.append({"header": ["group", f"share of {model} {imp['method']}"],
                       "rows": [[g, v / total] for g, v in imp["by_group"].items()]})
        if imp.get("features"):
            tables.append({"header": ["original feature", f"{model}: {imp['features_method']}"],
                           "rows": imp["features"][:TOP_ORIGINAL]})
    return templating.render("report/importances.html", tables=tables,
                             images=[i for i in images if i.startswith("importance_")])


def _shap(results: dict[str, Any], images: list[str]) -> dict[str, Any] | None:
    """The SHAP section's share-per-group tables (model, rows) and its figures (None: no SHAP was computed)."""
    shap = results.get("shap") or {}
    if not shap:
        return None
    tables = []
    for model, s in shap.items():
        if "by_group" in s:
            total = max(sum(s["by_group"].values()), 1e-12)
            tables.append((model, [[g, v / total] for g, v in s["by_group"].items()]))
    return {"tables": tables, "images": [i for i in images if i.startswith("shap")]}


def render(results: dict[str, Any], images: list[str], mistakes_html: Markup | str = "") -> str:
    """The page as HTML text: ``templates/report/index.html`` with every section's data (rendered by its own
    template: each section function is also what the tests read)."""
    task, counts = results["task"], results["counts"]
    ev = results.get("evaluation") or {}
    first = _chosen_model(results, results["models"])
    ablations = [[r["name"], ", ".join(r["groups"]), r["test"]["roc_auc"], r["test"]["balanced_accuracy"],
                  r["test"]["macro_f1"], r["test"]["map"], r.get("val_score")] for r in results.get("ablations") or []]
    upper = [duplicates_section(counts.get("duplicates") or {}), metrics_section(results),
             labels_changed_section(results.get("labels_changed")), shuffled_section(ev.get("shuffled")),
             gap_section(results), feature_sets_section(ev), grid_section(results.get("grid")),
             balance_section(results)]
    lower = [importances_section(results.get("importances") or {}, images), eda_section(results, images),
             params_section(results), network_section(results), columns_section(results)]
    return str(templating.render(
        "report/index.html", task=task, features=results["features"], groups=results["groups"],
        run_id=results["run_id"], model_uri=results["model_uri"],
        splits={"header": ["split", *task["class_names"], "clips"],
                "rows": [[s, *[c.get(k) for k in task["class_names"]], c["clips"]]
                         for s, c in counts["splits"].items()]},
        counts_note=", ".join(f"{k}: {_plain(v)}" for k, v in counts.items()
                              if k not in ("splits", "excluded_columns", "duplicates")),
        upper=[s for s in upper if s], lower=[s for s in lower if s], chosen_model=first,
        per_class=[[c, v["precision"], v["recall"], v["f1"], v["support"]]
                   for c, v in results["models"][first]["test"]["per_class"].items()],
        figures=[i for i in images if not i.startswith(_OWN_SECTION)], mistakes=mistakes_html,
        ablations=ablations, shap=_shap(results, images),
        preprocessing=[[p["group"], p["dim"], p["components"], p["variance"]] for p in results["preprocessing"]],
        components=components_rows(ev.get("components")), component_rule=(ev.get("components") or {}).get("rule")))


def components_rows(components: dict[str, Any] | None) -> list[list[Any]]:
    """Model x group: the PCA components each outer fold's model kept (its own fit), and the saved model's; first,
    each model's rows per component (the count rule each fold chose, and the saved model's)."""
    if not components:
        return []
    saved = components.get("saved") or {}
    rows = []
    for model, folds in (components.get("per_fold") or {}).items():
        if all("rule" in f for f in folds):
            rows.append([model, "rows per component", ", ".join(str(f["rule"]) for f in folds),
                         components.get("saved_rule", "–") if model in saved else "–"])
        for group in folds[0]["components"]:
            rows.append([model, group, ", ".join(str(f["components"].get(group, "–")) for f in folds),
                         (saved.get(model) or {}).get(group, "–")])
    return rows


def _chosen_model(results: dict[str, Any], candidates: Any) -> str:
    """The model the figures are about: the saved one, else the one train chose (``evaluation.chosen``), else the
    MLP, else the first."""
    ev = results.get("evaluation") or {}
    names = list(candidates)
    return next((m for m in (ev.get("saved_model"), ev.get("chosen"), "mlp") if m in names), names[0])


def mistakes(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(model, all its misclassified clips, most confident mistake first) from the stored predictions."""
    pred = results.get("predictions") or {}
    if not pred.get("proba"):
        return "", []
    model = _chosen_model(results, pred["proba"])
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


def mistakes_section(results: dict[str, Any], report_uri: str, limit: int = MAX_MISTAKES) -> Markup | str:
    """The misclassified clips with a player and a spectrogram each (assets under ``report/assets/``)."""
    model, every = mistakes(results)
    if not model:
        return ""
    wrong = every[:limit]
    return templating.render("report/mistakes.html", total=len(every), n=len(results["predictions"]["y"]),
                             model=model, scope=_scope(results), more=max(0, len(every) - limit),
                             clips=[{**m, "assets": write_assets(m, report_uri)} for m in wrong])


def columns_section(results: dict[str, Any]) -> Markup:
    """Which feature columns went in (width, PCA) and which were left out, with the reason."""
    prep = {p["group"]: p for p in results.get("preprocessing") or []}
    excluded = results["counts"].get("excluded_columns") or {}
    rows = [[c, "used", prep.get(c, {}).get("dim"), prep.get(c, {}).get("components"), prep.get(c, {}).get("variance"),
             ""] for c in results["groups"]]
    rows += [[c, "left out", None, None, None, why] for c, why in excluded.items()]
    return templating.render("report/columns.html", rows=rows,
                             classes=["used"] * len(results["groups"]) + ["left-out"] * len(excluded))


def gap_section(results: dict[str, Any]) -> Markup | str:
    """The score each model was chosen on beside its held-out score (``jobs.train.gap``), and what the pair is."""
    gap = results.get("gap")
    if not gap:
        return ""
    rows = [[m, v["selection"], v["held_out"], Plain(f"{v['gap']:+.3f}")] for m, v in gap["models"].items()]
    return templating.render("report/gap.html", gap=gap, rows=rows)


def _network_title(network: dict[str, Any]) -> str:
    return f"MLP ({'the saved model' if network['saved'] else 'compared, not the saved model'})"


def network_section(results: dict[str, Any]) -> Markup | str:
    """The trained network's layers, read from its torch module: a drawing and a table."""
    network = results.get("network")
    if not network:
        return ""
    rows = [[b["name"], b["units"], ", ".join(b["after"])] for b in plots.network_blocks(network["layers"])]
    return templating.render("report/network.html", title=_network_title(network), rows=rows)


def params_section(results: dict[str, Any]) -> Markup:
    """The chosen hyper-parameters and every tuning trial, values exactly as used (the record's ``search`` key)."""
    search = results.get("search") or {}
    params = search.get("params") or {}
    trials = search.get("trials") or []
    table = None
    if trials:
        keys = [k for k in trials[0] if k != "error"]
        table = {"wall_s": search.get("wall_s", 0), "header": keys + ["error"],
                 "rows": [[Plain(exact(t.get(k))) if k in params else t.get(k) for k in keys] + [t.get("error")]
                          for t in trials]}
    nested = [_nested_trials(m, n) for m, n in (search.get("nested") or {}).items() if n.get("trials")]
    return templating.render("report/params.html", method=search.get("method", ""), trials=table, nested=nested,
                             params=[[k, Plain(exact(v))] for k, v in params.items()])


def _nested_trials(model: str, nested: dict[str, Any]) -> dict[str, Any]:
    """Every setting one model's nested tuning tried in each outer fold (the defaults first), its pooled inner score
    and the one kept, under the space it was drawn from: folded, as it runs to settings x outer folds rows."""
    names = list(nested["trials"][0][0]["params"])
    rows, classes = [], []
    for fold, (tried, chosen) in enumerate(zip(nested["trials"], nested["chosen"]), 1):
        for i, t in enumerate(tried):
            rows.append([fold, "defaults" if i == 0 and nested.get("space") else i,
                         *[Plain(exact(t["params"].get(k))) for k in names], t["score"],
                         "yes" if t["params"] == chosen else ""])
            classes.append("used" if t["params"] == chosen else "")
    return {"model": model, "outer_folds": nested["outer_folds"], "metric": nested["metric"], "rows": rows,
            "classes": classes, "header": ["outer fold", "trial", *names, "inner score", "chosen"],
            "space": "; ".join(f"{k}: {r}" for k, r in (nested.get("space") or {}).items())}


def _num(v: float) -> Plain:
    """A statistic to four significant figures (p-values of 1e-12 and means of 0.0004 stay readable)."""
    return Plain(f"{v:.4g}")


def _differences(group: str, per: dict[str, dict[str, Any]], images: list[str]) -> dict[str, Any]:
    """One group's top values per comparison (a table each), its bar plot, and what was left out and why."""
    first = next(iter(per.values()))
    comparisons = []
    for label, d in per.items():
        a, _, b = label.partition(" vs ")
        c: dict[str, Any] = {"label": label, "n_in": d["n_in"], "n_out": d["n_out"], "skipped": d.get("skipped")}
        if not c["skipped"]:
            left = [f"{len(d['constant'])} constant within both sides ({', '.join(d['constant'][:8])}"
                    f"{', ...' if len(d['constant']) > 8 else ''})" if d["constant"] else "",
                    f"{d['non_finite_rows']} clip(s) with non-finite values" if d["non_finite_rows"] else ""]
            c.update(left="; ".join(x for x in left if x),
                     header=["value", f"mean, {a}", f"mean, {b}", "Hedges' g", "Welch's t", "p", "q (BH)"],
                     rows=[[r["name"], _num(r["mean_in"]), _num(r["mean_out"]), Plain(f"{r['g']:+.3f}"),
                            _num(r["t"]), _num(r["p"]), _num(r["q"])] for r in d["rows"][:TOP_DIFFERENCES]])
        comparisons.append(c)
    name = f"eda_differences_{group}.png"
    return {"group": group, "n_values": first["n_values"], "open": first["n_values"] <= MAX_HEATMAP,
            "leaders": ", ".join(f"{r['name']} (g {r['g']:+.2f})" for r in first["rows"][:3]),
            "comparisons": comparisons, "image": name if name in images else None}


def _correlations(eda: dict[str, Any]) -> dict[str, Any]:
    """The named, narrow groups' most correlated pairs (a heatmap each); the other groups and why not."""
    groups, skipped = [], []
    for group, c in eda["correlations"].items():
        if "matrix" not in c:
            skipped.append(f"{group}: {c['skipped']}")
            continue
        if c["constant"]:
            skipped.append(f"{group}: left out {len(c['constant'])} constant value(s) ({', '.join(c['constant'])})")
        groups.append({"group": group, "rows": [[p["a"], p["b"], Plain(f"{p['rho']:+.3f}")] for p in c["top_pairs"]]})
    return {"groups": groups, "skipped": skipped}


def _map(results: dict[str, Any], eda: dict[str, Any]) -> dict[str, Any]:
    """The map of the clips: what it shows, how many of its clips are ringed and how many could be."""
    m = eda["map"]
    if "xy" not in m:
        return {"skipped": m["skipped"]}
    wrong, _ = map_mistakes(results)
    scored = set((results.get("predictions") or {}).get("clip_id") or [])
    return {"skipped": None, "perplexity": m["perplexity"], "shown": len(m["clip_id"]), "dims": m["dims"],
            "pca": m.get("pca"), "wrong": int(wrong.sum()), "scored": sum(c in scored for c in m["clip_id"]),
            "capped": len(m["clip_id"]) < eda["of"], "most": MAX_MAP_POINTS}


def _ranking(eda: dict[str, Any], images: list[str]) -> dict[str, Any] | None:
    """The study's one ranking: a table per comparison of the top values across every named group, by |t|."""
    comparisons = []
    for label, r in (eda.get("ranking") or {}).items():
        a, _, b = label.partition(" vs ")
        comparisons.append({"label": label, "n_tested": r["n_tested"],
                            "header": ["group", "value", f"mean, {a}", f"mean, {b}", "Welch's t", "p", "q (list)",
                                       "q (group)", "Hedges' g"],
                            "rows": [[x["group"], x["name"], _num(x["mean_in"]), _num(x["mean_out"]), _num(x["t"]),
                                      _num(x["p"]), _num(x["q_all"]), _num(x["q"]), Plain(f"{x['g']:+.3f}")]
                                     for x in r["rows"]]})
    if not comparisons:
        return None
    return {"comparisons": comparisons, "top": TOP_RANKING, "image": "eda_ranking.png" in images,
            "groups": next(iter(eda["ranking"].values()))["groups"]}


def _study_maps(eda: dict[str, Any], images: list[str]) -> dict[str, Any]:
    """MPS t-value heatmaps per signal and one map per embedding column (those drawn), and the maps skipped."""
    maps = eda.get("embedder_maps") or {}
    drawn = [c for c in maps if f"eda_map_{c}.png" in images]
    capped = any(len(maps[c]["clip_id"]) < maps[c]["of"] for c in drawn)
    return {"mps": [g for g in (eda.get("mps_t") or {}) if f"eda_mps_t_{g}.png" in images], "maps": drawn,
            "sample": len(maps[drawn[0]]["clip_id"]) if capped else None,
            "skipped": [f"{c}: {m['skipped']}" for c, m in maps.items() if "xy" not in m]}


def eda_section(results: dict[str, Any], images: list[str]) -> Markup | str:
    """The exploratory analysis: differences per group (tables and bars), correlations, the map of the clips."""
    eda = results.get("eda")
    if not eda:
        return ""
    return templating.render(
        "report/eda.html", n=eda["n"], top=TOP_DIFFERENCES, notes=eda["notes"],
        differences=[_differences(g, per, images) for g, per in eda["differences"].items()],
        ranking=_ranking(eda, images), correlations=_correlations(eda), map=_map(results, eda),
        study=_study_maps(eda, images))


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
