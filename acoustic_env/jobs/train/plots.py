"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed).

Each function returns bytes so the report can be written through fsspec to
local disk or object storage alike.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roc_png(curves_by_model: dict[str, dict[str, dict[str, list[float]]]]) -> bytes:
    """ROC curves of every model (one line per model and class)."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for model, curves in curves_by_model.items():
        for cls, c in curves.items():
            ax.plot(c["fpr"], c["tpr"], label=f"{model}: {cls}" if len(curves) > 1 else model)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def confusion_png(matrix: list, class_names: list[str], title: str) -> bytes:
    """A single-label confusion matrix (rows: given label, columns: prediction)."""
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.1 * len(class_names) + 2))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="label", title=title)
    return _png(fig)


def multilabel_confusion_png(matrices: list, class_names: list[str], title: str) -> bytes:
    """One 2×2 matrix per class (multi-label tasks)."""
    fig, axes = plt.subplots(1, len(class_names), figsize=(2.4 * len(class_names), 2.6), squeeze=False)
    for ax, m, name in zip(axes[0], matrices, class_names):
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    return _png(fig)


def calibration_png(curves: dict[str, dict[str, Any]], n_bins: int = 10) -> bytes:
    """Reliability diagrams with the clips behind each point: observed frequency against predicted probability.

    Each point is labelled with its clip count and a bar panel below counts the
    clips per bin: on a small test set a point of three clips is noise, and the
    curve alone does not say which points those are.
    """
    fig, (ax, bars) = plt.subplots(2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    width = 1 / n_bins / max(len(curves), 1)
    for slot, (model, c) in enumerate(curves.items()):
        if not c["observed"]:
            continue
        ece = f" (ECE {c['ece']:.3f})" if c.get("ece") is not None else ""
        (line,) = ax.plot(c["predicted"], c["observed"], "o-", label=model + ece)
        counts = c.get("counts") or []
        for x, y, n in zip(c["predicted"], c["observed"], counts):
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=6, color=line.get_color())
        if counts:
            left = np.floor(np.asarray(c["predicted"]) * n_bins).clip(0, n_bins - 1) / n_bins
            bars.bar(left + slot * width, counts, width=width, align="edge", color=line.get_color(), alpha=0.8)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(ylabel="observed frequency", title="Calibration (labels: clips per point)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    bars.set(xlabel="predicted probability", ylabel="clips", xlim=(0, 1))
    return _png(fig)


def importance_png(names: list[str], values: list[float], title: str) -> bytes:
    """Horizontal bars of mean |SHAP|, largest on top."""
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(names) + 1.2))
    ax.barh(range(len(names))[::-1], values, color="#3b75af")
    ax.set_yticks(range(len(names))[::-1], names, fontsize=7)
    ax.set(xlabel="mean |SHAP value|", title=title)
    return _png(fig)


def mps_heatmap_png(grid: np.ndarray, wf: list[float], wt: list[float], title: str) -> bytes:
    """Attribution over the modulation grid: spectral modulation (rows) × temporal modulation (columns)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    extent = (wt[0], wt[-1], 1000 * wf[0], 1000 * wf[-1])
    im = ax.imshow(grid, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set(xlabel="temporal modulation (Hz)", ylabel="spectral modulation (cycles/kHz)", title=title)
    fig.colorbar(im, ax=ax, label="mean |SHAP value|")
    return _png(fig)
