"""The static report: ``report/index.html`` with its PNGs and ``metrics.json``, written through fsspec.

One self-contained page that opens from disk in any browser (relative image
links, inline CSS, no scripts).
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from acoustic_env.jobs.train import plots
from acoustic_env.storage import filesystem, join

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td.t,th:first-child{text-align:left}img{max-width:100%;margin:.3em}
.note{color:#555;font-size:.9em;max-width:60em}code{background:#f5f5f5;padding:0 .2em}"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cell = lambda c: f"<td class='t'>{_fmt(c)}</td>" if isinstance(c, str) else f"<td>{_fmt(c)}</td>"  # noqa: E731
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _write(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def _accuracy_cell(m: dict[str, Any], adjusted: dict[str, Any] | None) -> str:
    if not adjusted:
        return _fmt(m["accuracy"])
    if adjusted["adjusted"] is None:
        return f"{m['accuracy']:.3f} (adjusted: undefined)"
    lo, hi = adjusted["interval"]
    return f"{m['accuracy']:.3f} (adjusted {adjusted['adjusted']:.3f} [{lo:.3f}, {hi:.3f}])"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """Every PNG of the report, by file name."""
    models = results["models"]
    names = results["task"]["class_names"]
    out = {"roc.png": plots.roc_png({m: r["test"]["roc_curves"] for m, r in models.items()}),
           "calibration.png": plots.calibration_png({m: r["test"]["calibration"] for m, r in models.items()})}
    for m, r in models.items():
        title = f"{m} (test split)"
        out[f"confusion_{m}.png"] = (plots.multilabel_confusion_png(r["test"]["confusion"], names, title)
                                     if results["task"]["kind"] == "multi_label" else
                                     plots.confusion_png(r["test"]["confusion"], names, title))
    shap = results.get("shap") or {}
    if "mlp" in shap:
        feats = shap["mlp"]["features"]
        out["shap_features.png"] = plots.importance_png([f for f, _ in feats], [v for _, v in feats],
                                                        "MLP: original features (PCA mapped back)")
        comps = shap["mlp"]["components"]
        out["shap_components.png"] = plots.importance_png([f for f, _ in comps], [v for _, v in comps],
                                                          "MLP: network inputs (PCA components)")
        for group, g in shap["mlp"]["mps"].items():
            out[f"shap_{group}.png"] = plots.mps_heatmap_png(np.asarray(g["values"]), g["wf_cycles_per_hz"],
                                                             g["wt_hz"], f"MLP attribution over {group}")
    if "xgboost" in shap:
        comps = shap["xgboost"]["components"]
        out["shap_xgboost.png"] = plots.importance_png([f for f, _ in comps], [v for _, v in comps],
                                                       "XGBoost: PCA components (TreeSHAP)")
    return out


def render(results: dict[str, Any], images: list[str]) -> str:
    """The page as HTML text."""
    task, counts = results["task"], results["counts"]
    adj = results.get("adjusted_accuracy") or {}
    metric_rows = []
    for name, r in results["models"].items():
        m = r["test"]
        metric_rows.append([name, _accuracy_cell(m, adj.get(name)), m["balanced_accuracy"], m["roc_auc"], m["map"],
                            m["macro_f1"], m["micro_f1"], m["calibration"]["ece"], r.get("val_score")])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>acoustic-env: {html.escape(task['name'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Task <code>{html.escape(task['name'])}</code> ({html.escape(task['kind'])}): "
             f"{html.escape(', '.join(task['class_names']))}</h1>",
             f"<p class='note'>Features: <code>{html.escape(results['features'])}</code>; groups: "
             f"{html.escape(', '.join(results['groups']))}. Run {html.escape(results['run_id'])}.</p>",
             "<h2>Data</h2>",
             _table(["split", *task["class_names"], "clips"],
                    [[s, *[c.get(k) for k in task["class_names"]], c["clips"]] for s, c in counts["splits"].items()]),
             "<p class='note'>" + html.escape(", ".join(f"{k}: {v}" for k, v in counts.items() if k != "splits"))
             + "</p>",
             "<h2>Test metrics</h2>",
             _table(["model", "accuracy", "balanced acc.", "ROC AUC", "mAP", "macro F1", "micro F1", "ECE",
                     "val. score"], metric_rows)]
    if adj:
        parts.append("<p class='note'><b>Adjusted accuracy.</b> " + html.escape(next(iter(adj.values()))["formula"])
                     + " Label accuracy used: " + html.escape(json.dumps(next(iter(adj.values()))["label_accuracy"]))
                     + ". The raw figure is what the test labels say; the adjusted one estimates the accuracy "
                       "against correct labels.</p>")
    elif results.get("adjustment_note"):
        parts.append(f"<p class='note'>{html.escape(results['adjustment_note'])}</p>")
    mlp = results["models"]["mlp"]["test"]["per_class"]
    parts += ["<h3>MLP per class</h3>",
              _table(["class", "precision", "recall", "F1", "support"],
                     [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in mlp.items()])]
    parts.append("<h2>Figures</h2>" + "".join(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>"
                                             for i in images if not i.startswith("shap")))
    if results.get("ablations"):
        parts += ["<h2>Feature-group ablations</h2>",
                  "<p class='note'>The network with the chosen hyper-parameters, retrained on each subset; "
                  "same splits. The first rows are the full models.</p>",
                  _table(["model", "groups", "ROC AUC", "balanced acc.", "macro F1", "mAP", "val. score"],
                         [[r["name"], ", ".join(r["groups"]), r["test"]["roc_auc"], r["test"]["balanced_accuracy"],
                           r["test"]["macro_f1"], r["test"]["map"], r.get("val_score")] for r in results["ablations"]])]
    shap = results.get("shap") or {}
    if shap:
        parts.append("<h2>SHAP attributions</h2><p class='note'>Mean |SHAP value| on test clips. For the MLP, the "
                     "preprocessing (standardise, PCA, scale) is folded into the network so attributions land on "
                     "the original index names and modulation-grid cells; XGBoost's are on the PCA components.</p>")
        if "mlp" in shap:
            parts.append(_table(["group", "share of MLP attribution"],
                                [[g, v / max(sum(shap["mlp"]["by_group"].values()), 1e-12)]
                                 for g, v in shap["mlp"]["by_group"].items()]))
        parts.append("".join(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>" for i in images if i.startswith("shap")))
    search = results.get("search") or {}
    if search.get("trials"):
        keys = [k for k in search["trials"][0] if k not in ("error",)]
        parts += [f"<h2>Hyper-parameter search</h2><p class='note'>{html.escape(search['method'])}; "
                  f"{len(search['trials'])} trials in {search['wall_s']:.0f} s; chosen: "
                  f"{html.escape(json.dumps(search['params']))}</p>",
                  _table(keys + ["error"], [[t.get(k) for k in keys] + [t.get("error")] for t in search["trials"]])]
    parts += ["<h2>Preprocessing</h2>",
              _table(["group", "inputs", "components", "variance kept"],
                     [[p["group"], p["dim"], p["components"], p["variance"]] for p in results["preprocessing"]]),
              f"<p class='note'>Model artifact: <code>{html.escape(results['model_uri'])}</code> "
              "(<code>acoustic_env.load_model(uri).predict_proba(table)</code>).</p></body></html>"]
    return "\n".join(parts)


def write_report(uri: str, results: dict[str, Any]) -> str:
    """Write index.html, the PNGs and metrics.json under ``uri``; returns the index's URI."""
    pngs = figures(results)
    for name, data in pngs.items():
        _write(join(uri, name), data)
    slim = json.loads(json.dumps(results, default=str))
    for r in slim["models"].values():  # curves belong in the figures, not in the summary numbers
        r["test"].pop("roc_curves", None)
    _write(join(uri, "metrics.json"), json.dumps(slim, indent=2, sort_keys=True).encode())
    index = join(uri, "index.html")
    _write(index, render(results, list(pngs)).encode())
    return index
