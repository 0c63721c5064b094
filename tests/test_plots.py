"""The report's figures drawn cheaply (issue 59) and still whole: the single-pass save gives matplotlib's own tight
crop pixel for pixel, the hand-laid panels keep names clear of the panel beside and the figure title clear of the
panels' titles, and the calibration legend never covers the curves.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np
import pytest
from PIL import Image

from acoustic_env.pages import plots


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _tight(fig: Any) -> bytes:
    """What ``plots._png`` replaced: matplotlib's two-pass tight save."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.DPI, bbox_inches="tight")
    return buf.getvalue()


def _long_labels(layout: str | None) -> Any:
    fig, ax = plt.subplots(figsize=(5, 3), layout=layout)
    ax.barh(range(3), [1, -2, 3])
    ax.set_yticks(range(3), ["a name past the figure's left edge", "b", "c"])  # without a layout engine: kept
    ax.set(xlabel="g", title="Title")
    fig.suptitle("figure title")
    return fig


@pytest.mark.parametrize("layout", [None, "constrained"])
def test_the_single_pass_save_draws_what_the_tight_save_draws(layout):
    expected = _pixels(_tight(_long_labels(layout)))
    got = _pixels(plots._png(_long_labels(layout)))
    assert got.shape == expected.shape and (got == expected).all()


@pytest.fixture
def drawn(monkeypatch) -> list[Any]:
    """The figures ``plots`` saves, drawn again whole once saved (a new canvas: ``plt.close`` took theirs), so that
    every artist's extent is where that draw put it."""
    figures: list[Any] = []
    save = plots._png

    def keep(fig: Any) -> bytes:
        png = save(fig)
        FigureCanvasAgg(fig).draw()
        figures.append(fig)
        return png

    monkeypatch.setattr(plots, "_png", keep)
    return figures


def _extent(artist: Any) -> Any:
    return artist.get_window_extent(artist.get_figure(root=True).canvas.get_renderer())


def test_side_by_side_panels_keep_their_names_clear_of_the_panel_beside_and_titles_apart(drawn):
    rng = np.random.default_rng(0)
    rows = [{"name": f"indices_raw: a rather long value name {i}", "g": float(g), "q": 0.01 * i}
            for i, g in enumerate(rng.normal(size=10))]
    plots.effect_sizes_png({f"class {k} vs rest": rows for k in range(4)}, "four comparisons")  # 3 + 1 panels
    fig = drawn[0]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    for left, right in ((axes[0], axes[1]), (axes[1], axes[2])):
        names = [_extent(t) for t in right.get_yticklabels()]
        assert min(b.x0 for b in names) > left.get_window_extent().x1 + 5  # clear of the spine and its last tick
    above, below = axes[0], axes[3]  # second row: its title clear of the first row's axis label
    assert _extent(below.title).y1 < _extent(above.xaxis.label).y0
    suptitle = _extent(fig._suptitle)
    assert all(suptitle.y0 > _extent(ax.title).y1 for ax in axes)


def test_modulation_panels_keep_the_figure_title_clear_of_the_panel_titles(drawn):
    rng = np.random.default_rng(1)
    grids = {f"class {k} vs rest": rng.normal(size=(6, 12)) for k in range(2)}
    plots.mps_t_png(grids, list(np.linspace(0, 0.004, 6)), list(np.linspace(-40, 40, 12)), "mps_raw: t")
    fig = drawn[0]
    top, bottom = [ax for ax in fig.axes if ax.get_title()]  # the panels (each colour bar is an axes of its own)
    assert _extent(fig._suptitle).y0 > _extent(top.title).y1
    assert _extent(bottom.title).y1 < _extent(top.xaxis.label).y0


def test_the_calibration_legend_sits_beside_the_curves(drawn):
    curve = {"predicted": [0.1, 0.5, 0.9], "observed": [0.2, 0.5, 0.8], "counts": [3, 4, 5], "ece": 0.05}
    plots.calibration_png({"mlp": curve, "logreg": curve}, "held-out test split")
    ax = drawn[0].axes[0]
    legend, frame = _extent(ax.get_legend()), ax.get_window_extent()
    assert legend.x0 > frame.x1 and legend.y1 <= frame.y1 + 1  # right of the axes, from their top
