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
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402


#: Pixels per inch of every PNG.
DPI = 110
#: White space kept around the drawing, in inches (matplotlib's ``savefig.pad_inches``).
PAD_INCHES = 0.1


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes, cropped to what it draws, its titles also in the PNG's ``Title`` text chunk.

    A figure's title says which predictions it shows (out-of-fold or the held-out
    test split); kept as text it can be read without looking at the image (by a
    screen reader, ``exiftool``, or a test).

    The same pixels as ``savefig(bbox_inches="tight")`` for 10-20 % less CPU
    (benchmarks/report_figures.py): that option draws the whole figure once to
    find its extent, then again to save it; here the layout engine (if any) runs
    once, the extent is measured without a draw, and the figure is drawn once.
    """
    titles = [t for t in (fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)) if t]
    fig.set_dpi(DPI)
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine("none")  # laid out: not again when saved
    extent = fig.get_tightbbox(fig.canvas.get_renderer()).padded(PAD_INCHES)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches=extent, metadata={"Title": " | ".join(titles)})
    plt.close(fig)
    return buf.getvalue()


def _inches_wide(texts: list[str], points: float) -> float:
    """The widest of ``texts`` set at ``points``, in inches, as the PNG's renderer will draw them."""
    font, renderer = FontProperties(size=points), RendererAgg(1, 1, DPI)
    return max((renderer.get_text_width_height_descent(t, font, ismath=False)[0] for t in texts), default=0) / DPI


def _panels(nrows: int, ncols: int, size: tuple[float, float], left: float, top: float, gap: float,
            bottom: float = 0.5) -> tuple[Any, np.ndarray]:
    """A figure of ``size`` inches holding ``nrows`` × ``ncols`` axes, spaced by the room their texts need.

    ``left``: room left of every column (its tick labels and axis label); ``top``:
    above the first row (the figure's title and the panel's); ``gap``: between rows
    (an axis's labels and the next panel's title); ``bottom``: below the last row.
    Laid out here rather than by a layout engine, which measures every artist of
    the figure twice: a quarter of such a figure's CPU (benchmarks/report_figures.py).
    """
    width, height = size
    right = 0.2
    panel_w = (width - ncols * left - right) / ncols
    panel_h = (height - top - bottom - (nrows - 1) * gap) / nrows
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "wspace": left / panel_w,
        "top": 1 - top / height, "bottom": bottom / height, "hspace": gap / panel_h})


def _title(ax: Any, text: str, **style: Any) -> None:
    """``ax``'s title, set at the axes' top: for an axes whose y axis has no offset text (labelled categories, or no
    ticks) and no ticks above, where matplotlib would place it, without its measuring every tick label of the
    figure on each draw to find that out (a quarter of a 60 × 60 correlation heatmap's CPU)."""
    ax.set_title(text, y=1.0, **style)


def roc_png(curves_by_model: dict[str, dict[str, dict[str, list[float]]]], scope: str) -> bytes:
    """ROC curves of every model (one line per model and class); ``scope`` says which predictions they are."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for model, curves in curves_by_model.items():
        for cls, c in curves.items():
            ax.plot(c["fpr"], c["tpr"], label=f"{model}: {cls}" if len(curves) > 1 else model)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({scope})")
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
    ax.set(xlabel="predicted", ylabel="label")
    _title(ax, title)
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
        _title(ax, name, fontsize=9)
    fig.suptitle(title)
    return _png(fig)


def calibration_png(curves: dict[str, dict[str, Any]], scope: str, n_bins: int = 10) -> bytes:
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
    ax.set(ylabel="observed frequency", title=f"Calibration ({scope}; labels: clips per point)", xlim=(0, 1), ylim=(0, 1))
    bars.set(xlabel="predicted probability", ylabel="clips", xlim=(0, 1))
    # outside the axes: never over a point or its count (and no search for the emptiest corner, which measured
    # every count label at every candidate place: a fifth of the figure's CPU)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(fig)


def importance_png(names: list[str], values: list[float], title: str, measure: str = "mean |SHAP value|") -> bytes:
    """Horizontal bars of an importance (``measure``, the x axis's name: SHAP's, a coefficient's, Gini's), largest
    on top."""
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(names) + 1.2))
    ax.barh(range(len(names))[::-1], values, color="#3b75af")
    ax.set_yticks(range(len(names))[::-1], names, fontsize=7)
    ax.set(xlabel=measure)
    _title(ax, title)
    return _png(fig)


def _modulation_image(ax: Any, grid: np.ndarray, wf: list[float], wt: list[float], title: str, **style: Any) -> Any:
    """One grid over the MPS's axes: spectral modulation (rows, cycles/kHz) × temporal modulation (columns, Hz)."""
    extent = (wt[0], wt[-1], 1000 * wf[0], 1000 * wf[-1])
    im = ax.imshow(grid, origin="lower", aspect="auto", extent=extent, **style)
    ax.set(xlabel="temporal modulation (Hz)", ylabel="spectral modulation (cycles/kHz)", title=title)
    return im


def mps_heatmap_png(grid: np.ndarray, wf: list[float], wt: list[float], title: str) -> bytes:
    """Attribution over the modulation grid: spectral modulation (rows) × temporal modulation (columns)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    im = _modulation_image(ax, grid, wf, wt, title, cmap="magma")
    fig.colorbar(im, ax=ax, label="mean |SHAP value|")
    return _png(fig)


def mps_t_png(grids: dict[str, np.ndarray], wf: list[float], wt: list[float], title: str) -> bytes:
    """Welch's t of every modulation cell, one panel per comparison, on one colour scale symmetric about 0.

    Red: higher in the comparison's first side; blue: higher in the rest; blank: a
    cell that was not tested (constant within both sides).
    """
    finite = [np.abs(g[np.isfinite(g)]) for g in grids.values()]
    top = max([float(f.max()) for f in finite if f.size] or [1.0]) or 1.0
    fig, axes = _panels(len(grids), 1, (6.8, 3.0 * len(grids) + 0.4), left=0.75, top=0.65, gap=0.85)
    for ax, (label, grid) in zip(axes[:, 0], grids.items()):
        im = _modulation_image(ax, np.ma.masked_invalid(grid), wf, wt, label, cmap="RdBu_r", vmin=-top, vmax=top)
        fig.colorbar(im, ax=ax, label=f"Welch's t (> 0: higher in {label.partition(' vs ')[0]})")
    fig.suptitle(title, fontsize=10)
    return _png(fig)


# --- exploratory analysis (learn.eda) ------------------------------------------------

#: What ``effect_sizes_png`` can draw: a row's key → the axis label's name.
STATISTICS = {"g": "Hedges' g", "t": "Welch's t"}


def effect_sizes_png(tables: dict[str, list[dict[str, Any]]], title: str, stat: str = "g") -> bytes:
    """Horizontal bars of Hedges' g (or ``stat="t"``: Welch's t) per value, one panel per comparison, largest on top.

    Bars are coloured by sign (which side is higher) and starred where the
    Benjamini-Hochberg corrected p (the rows' ``q``) is below 0.05, so that a large
    effect on a handful of clips is not read as settled.
    """
    panels = [(label, rows, [r["name"] + (" *" if r["q"] < 0.05 else "") for r in rows])
              for label, rows in tables.items() if rows]
    cols = min(len(panels), 3)
    nrows = -(-len(panels) // cols)
    height = max(len(rows) for _, rows, _ in panels)
    names_wide = _inches_wide([n for *_, names in panels for n in names], 7)
    fig, axes = _panels(nrows, cols, (4.6 * cols, (0.26 * height + 1.3) * nrows + 0.5), left=names_wide + 0.35,
                        top=0.8, gap=0.8)  # left: the names, their ticks, and clear of the panel beside
    for ax, (label, rows, names) in zip(axes.ravel(), panels):
        g = np.array([r[stat] for r in rows])
        pos = np.arange(len(rows))[::-1]
        ax.barh(pos, g, color=np.where(g >= 0, "#c0504d", "#3b75af"))
        ax.set_yticks(pos, names, fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        first, _, second = label.partition(" vs ")
        ax.set_xlabel(f"{STATISTICS[stat]}  (> 0: higher in {first}; < 0: higher in {second})", fontsize=7)
        _title(ax, label, fontsize=9)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\n(* BH-corrected p < 0.05)", fontsize=10)
    return _png(fig)


def correlation_png(names: list[str], matrix: np.ndarray, title: str) -> bytes:
    """A labelled correlation heatmap (−1 blue … +1 red) with its colour bar; ``names`` label rows and columns."""
    n = len(names)
    size = max(4.0, 0.16 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    font = 8 if n <= 20 else 6 if n <= 40 else 5
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    _title(ax, title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="Spearman's rho")
    return _png(fig)


def clip_map_png(xy: np.ndarray, labels: list[str], wrong: np.ndarray, title: str, wrong_label: str) -> bytes:
    """The clips in 2-D, coloured by given class (legend), misclassified ones ringed in black.

    At most ten colours: beyond, the rarest labels (multi-label sets multiply) are
    drawn grey as one "other" entry, since more hues cannot be told apart at a glance.
    """
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    xy = np.asarray(xy).reshape(-1, 2)
    labels_arr = np.asarray(labels, dtype=object)
    classes = sorted(set(labels), key=lambda c: (-labels.count(c), c))
    shown, rest = (classes, []) if len(classes) <= 10 else (classes[:9], classes[9:])
    tab10 = plt.get_cmap("tab10")
    colours = [tab10(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 7)]  # tab10's grey last: "other" is grey
    for i, c in enumerate(shown):
        on = labels_arr == c
        ax.scatter(xy[on, 0], xy[on, 1], s=16, color=colours[i], alpha=0.8, label=f"{c} ({on.sum()})",
                   edgecolors="none")
    if rest:
        on = np.isin(labels_arr, rest)
        ax.scatter(xy[on, 0], xy[on, 1], s=12, color="#999999", alpha=0.6, edgecolors="none",
                   label=f"{len(rest)} other labels ({on.sum()})")
    if wrong.any():
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=60, facecolors="none", edgecolors="black", linewidths=1.1,
                   label=f"{wrong_label} ({int(wrong.sum())})")
    ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2")
    _title(ax, title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="given label", title_fontsize=7,
              markerscale=1.2)  # outside the axes: never over the clips
    return _png(fig)


def history_png(history: list[dict[str, float]], title: str) -> bytes:
    """Training and validation score per epoch, the epoch whose weights were kept marked."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_score"] for h in history], "o-", ms=3, label="training clips")
    ax.plot(epochs, [h["val_score"] for h in history], "o-", ms=3, label="validation clips")
    best = max(history, key=lambda h: h["val_score"])
    ax.axvline(best["epoch"], color="k", ls=":", lw=1)
    ax.annotate(f"kept: epoch {best['epoch']:g}, {best['val_score']:.3f}", (best["epoch"], best["val_score"]),
                textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set(xlabel="epoch", ylabel="ROC AUC (mAP for multi-label)", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def grid_png(cells: list[dict[str, Any]]) -> bytes:
    """The grid as the study drew it: embedders down, signal sets across, each cell's ROC AUC and interval."""
    embedders = list(dict.fromkeys(c["embedder"] for c in cells))
    signals = list(dict.fromkeys(c["signals"] for c in cells))
    auc = np.full((len(embedders), len(signals)), np.nan)
    fig, ax = plt.subplots(figsize=(1.9 * len(signals) + 2.2, 0.8 * len(embedders) + 1.6))
    for c in cells:
        i, j = embedders.index(c["embedder"]), signals.index(c["signals"])
        auc[i, j] = np.nan if c["roc_auc"] is None else c["roc_auc"]
        ci = c["roc_auc_interval"]
        text = (("–" if c["roc_auc"] is None else f"{c['roc_auc']:.3f}")
                + (f"\n[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
        ax.text(j, i, f"{text}\n{c['model']}", ha="center", va="center", fontsize=8,
                fontweight="bold" if c["winner"] else "normal")
        if c["winner"]:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec="black"))
    image = ax.imshow(auc, cmap="viridis", vmin=np.nanmin(auc) if np.isfinite(auc).any() else 0, vmax=1, alpha=0.6)
    fig.colorbar(image, ax=ax, label="ROC AUC (cross-validated)")
    ax.set_xticks(range(len(signals)), signals)
    ax.set_yticks(range(len(embedders)), embedders)
    ax.set(xlabel="signals", ylabel="embedder (+ indices + MPS)")
    _title(ax, "Grid: each cell's chosen model")
    return _png(fig)


def network_blocks(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``learn.mlp.layer_table``'s rows as the drawing's blocks: the input, then each linear layer's output units
    with the activation and dropout that follow it."""
    linear = [r for r in layers if r["layer"] == "linear"]
    blocks: list[dict[str, Any]] = [{"name": "input", "units": linear[0]["in"], "after": []}] if linear else []
    for r in layers:
        if r["layer"] == "linear":
            blocks.append({"name": f"hidden {len(blocks)}", "units": r["out"], "after": []})
        elif blocks:
            blocks[-1]["after"].append(r["name"] if r["layer"] == "activation" else f"dropout {r['p']:g}")
    if len(blocks) > 1:
        blocks[-1]["name"] = "output (logits)"
    return blocks


def network_png(layers: list[dict[str, Any]], title: str) -> bytes:
    """The network's layers left to right: one bar per layer of units (height on a log scale), its activation and
    dropout under it."""
    from matplotlib.patches import Rectangle

    blocks = network_blocks(layers)
    fig, ax = plt.subplots(figsize=(1.7 * len(blocks) + 0.6, 3.4))
    top = max(np.log2(b["units"] + 1) for b in blocks)
    for i, b in enumerate(blocks):
        h = 0.9 * np.log2(b["units"] + 1) / top
        ax.add_patch(Rectangle((i - 0.25, 0.5 - h / 2), 0.5, h, color="tab:gray" if i == 0 else "tab:blue", alpha=0.7))
        label = [b["name"], f"{b['units']} unit{'s' * (b['units'] != 1)}", *b["after"]]
        ax.text(i, 0.02, "\n".join(label), ha="center", va="top", fontsize=8)
        if i:
            ax.annotate("", (i - 0.27, 0.5), (i - 0.73, 0.5), arrowprops={"arrowstyle": "->", "color": "0.4"})
    ax.set(xlim=(-0.6, len(blocks) - 0.4), ylim=(-0.55, 1.0))
    _title(ax, title)
    ax.axis("off")
    return _png(fig)
