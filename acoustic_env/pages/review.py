"""The review page: the review queue and a random sample, each clip with a spectrogram, a player and verdict buttons.

The queue holds the first ``review_top`` clips in the audit's ``review_order`` (``learn/review_order.py``; the
suspects by default), each with why it was picked; under ``--serve`` an adaptive order re-ranks it as verdicts
come (``queue.py``). The random sample is drawn apart from the queue, whatever its order.

A reviewer goes through a few hundred clips, so the page is built for the
keyboard (play, verdict, right class, note, next unreviewed) with filters by
class and state, a playhead over the spectrogram, and a link to the source
segment of AudioSet clips (``source_url``). The clip-asset code here (decode,
Ogg, spectrogram) also draws the training report's misclassified clips.

A static page (``review/index.html`` + ``review/assets/``) so it can be opened
from disk, copied anywhere or put on a bucket; the data is inlined in the page
because browsers refuse ``fetch`` on ``file://``. Verdicts live in the
browser's localStorage and leave as an exported JSON/CSV file, or, when the page
is opened through ``acoustic-env audit-review --serve``, are POSTed to that
server as they are clicked (see ``server.py``).

Audio is the clip as the features saw it (the decode module's rules, 16 kHz
mono), peak-limited and encoded as Ogg Vorbis: every Chromium, Firefox and
Safari ≥ 15 plays it, and ten seconds take ~20–40 kB.

Whether ``start_s``/``end_s`` must be cut out of the file is not recorded in
the feature table; a file at least ``end_s`` long holds the whole recording
(cut), a shorter one is the segment itself (trimmed to its length), the same
two cases the extract job's ``--cut-segments`` tells apart.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import posixpath
import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import soundfile as sf
from scipy import signal

from acoustic_env.audio.decode import decode_bytes, read_bytes
from acoustic_env.audio.manifest import YTID
from acoustic_env.config import DecodeParams
from acoustic_env.csv_writer import RULE as CSV_RULE
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.errors import AuditError, ClipError
from acoustic_env.learn.review_order import ADAPTIVE, Pick, Pool, next_batch
from acoustic_env.storage import filesystem, join, redact

REVIEW_DIR = "review"
PAGE = "index.html"
#: The clips the review server's re-ranked queue reached beyond the page's own (their assets written on demand):
#: verdicts about them count like those about the page's clips (:func:`page_items`).
QUEUE_FILE = "queue.json"
#: The verdicts the review server saves, beside the page (``audit-estimate`` reads them).
VERDICTS_FILE = "verdicts.json"
#: Verdicts between two re-rankings of an adaptive queue (``ADAPTIVE``): the page asks the server for the next
#: batch after this many.
BATCH = 10
_DECODE = DecodeParams(min_duration_s=0.05)
#: Where the time axis sits in the spectrogram PNG (figure fractions left, bottom, width, height):
#: the pages draw their playhead over it, so it is handed to them rather than measured there.
SPEC_AXES = (0.09, 0.2, 0.9, 0.76)
#: An AudioSet clip id is ``<YTID>_<start ms>`` with an 11-character YouTube id (the manifest reader's rule).
_AUDIOSET_ID = re.compile(rf"^({YTID})_(\d+)$")
#: The id of the script element render_page inlines the page's data in (no ``<`` in it, so its end tag ends it).
_PAGE_DATA = "audit-data"


def verdicts_uri(audit_output: str) -> str:
    """Where an audit's review verdicts are saved: ``<audit>/review/verdicts.json``."""
    return join(audit_output, REVIEW_DIR, VERDICTS_FILE)


def source_url(clip_id: str, group: str | None = None) -> str | None:
    """The YouTube page of an AudioSet clip's source segment, or None for any other clip.

    AudioSet rows get ``clip_id = <YTID>_<start ms>`` and ``group = <YTID>``
    (see ``audio.manifest``); requiring both keeps a recording of one's own that
    happens to be called ``birds_night_1200.wav`` from getting a link.
    """
    match = _AUDIOSET_ID.match(clip_id)
    if not match or match.group(1) != group:
        return None
    return f"https://www.youtube.com/watch?v={match.group(1)}&t={int(match.group(2)) // 1000}s"


def asset_stem(clip_id: str) -> str:
    """A file-name-safe, collision-free stem for a clip's assets."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", clip_id)[:80]
    return f"{safe}-{hashlib.sha1(clip_id.encode()).hexdigest()[:8]}"


def clip_audio(uri: str, start_s: float | None, end_s: float | None) -> np.ndarray:
    """The clip's audio, 16 kHz mono float32, as the extract job decoded it."""
    data = read_bytes(uri)
    try:
        duration = sf.info(io.BytesIO(data)).duration
    except (sf.LibsndfileError, RuntimeError, TypeError):
        duration = 0.0
    cut = start_s is not None and end_s is not None and end_s > start_s and duration >= end_s - 1e-3
    return decode_bytes(data, _DECODE, start_s, end_s, cut=cut, uri=uri).audio


def ogg_bytes(audio: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scaled = audio * (0.95 / peak) if peak > 0.95 else audio
    buf = io.BytesIO()
    sf.write(buf, scaled.astype(np.float32), sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def spectrogram_png(audio: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    """A small dB spectrogram (0–8 kHz, 80 dB under its peak, magma) as PNG, inside matplotlib's axes.

    Why not ``imshow`` and ``savefig`` per clip: a page holds 150 of them, and matplotlib spent about 50 ms on each
    laying out and drawing the same axes again. The axes of a clip's length are drawn once (``_spectrogram_frame``,
    matplotlib's Agg canvas: no display, thread-safe); each clip's image is coloured with matplotlib's colour map,
    resized into the axes' pixels and laid under them, the pixels ``imshow`` would draw to within its interpolation
    (``tests/test_review_assets.py``), in about a quarter of the CPU (``benchmarks/review_assets.py``). Fast zlib
    (level 1): a spectrogram's noise compresses no better at the default level, which takes twice as long."""
    import matplotlib
    from PIL import Image

    _, _, S = signal.spectrogram(audio, fs=sr, nperseg=512, noverlap=384, window="hann")
    db = 10 * np.log10(S + 1e-10)
    vmax = float(db.max())  # a page's clips are at least _DECODE's 0.05 s: never an empty spectrogram
    level = np.clip((db - (vmax - 80)) / 80, 0, 1)[::-1]  # row 0 at the top of the picture: the highest frequency
    frame, box = _spectrogram_frame(round(audio.size / sr, 3), sr / 2000)
    rgb = matplotlib.colormaps["magma"](level, bytes=True)[..., :3]
    picture = Image.new("RGB", frame.size, "white")
    picture.paste(Image.fromarray(np.ascontiguousarray(rgb), "RGB").resize(
        (box[2] - box[0], box[3] - box[1]), Image.Resampling.BILINEAR), box[:2])
    picture.paste(frame, (0, 0), frame)  # the axes over the image: its spines, ticks and labels
    buf = io.BytesIO()
    picture.save(buf, format="png", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=32)
def _spectrogram_frame(seconds: float, khz: float) -> tuple[Any, tuple[int, int, int, int]]:
    """(the axes of a ``seconds``-long spectrogram up to ``khz`` as a transparent RGBA image, the axes' inside in its
    pixels: left, top, right, bottom), drawn once per length and kept: a page's clips share a few lengths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(5.0, 1.9), dpi=96)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_alpha(0)
    ax = fig.add_axes(SPEC_AXES)
    ax.patch.set_alpha(0)
    ax.set_xlim(0, seconds)
    ax.set_ylim(0, khz)
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.set_ylabel("kHz", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=7, length=2, pad=1)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    inside = ax.get_window_extent()  # pixels from the bottom left
    height = rgba.shape[0]
    box = (round(inside.x0), round(height - inside.y1), round(inside.x1), round(height - inside.y0))
    return Image.fromarray(rgba.copy(), "RGBA"), box


def write_assets(row: dict[str, Any], review_dir: str) -> dict[str, Any]:
    """Write one clip's player audio and spectrogram; a clip that cannot be read gets an ``error``, not a crash
    (redacted: the pages show it, and the URI it quotes may hold a secret)."""
    stem = asset_stem(row["clip_id"])
    try:
        audio = clip_audio(row["uri"], row.get("start_s"), row.get("end_s"))
    except ClipError as exc:
        return {"audio": None, "image": None, "error": redact(f"{exc.error_type}: {exc.message}")}
    except Exception as exc:  # noqa: BLE001 - one unreadable clip must not cost the reviewer the page
        return {"audio": None, "image": None, "error": redact(f"{type(exc).__name__}: {exc}")}
    fs, base = filesystem(review_dir)
    fs.makedirs(join(base, "assets"), exist_ok=True)
    fs.pipe_file(join(base, "assets", stem + ".ogg"), ogg_bytes(audio))
    fs.pipe_file(join(base, "assets", stem + ".png"), spectrogram_png(audio))
    return {"audio": f"assets/{stem}.ogg", "image": f"assets/{stem}.png", "error": None}


def review_pool(table: pa.Table, class_names: tuple[str, ...], kind: str) -> Pool:
    """What the review order chooses from (``learn/review_order.py``), read from an audit table.

    An audit written before the table kept its ``embedding`` falls back to the probabilities as the space
    ``diverse`` covers (the order still runs; its coverage is then of the model's opinions, not of the sounds).
    """
    given_sets = table["given_labels"].to_pylist()
    if kind == "single_label":
        given = np.array([class_names.index(g[0]) for g in given_sets], dtype=np.int64)
    else:
        given = np.array([[int(c in g) for c in class_names] for g in given_sets], dtype=np.int64)
    probs = np.column_stack([table[f"prob_{c}"].to_numpy() for c in class_names]).astype(np.float64)
    embedding = (np.stack(table["embedding"].to_numpy(zero_copy_only=False)) if "embedding" in table.column_names
                 else probs)
    return Pool(probs=probs, given=given, embedding=embedding, quality=table["label_quality"].to_numpy(),
                flagged=table["flagged"].to_numpy(zero_copy_only=False))


def choose_items(table: pa.Table, top: int, random_sample: int, seed: int, class_names: tuple[str, ...],
                 kind: str = "single_label", order: str = "suspect") -> tuple[list[Pick], list[int]]:
    """The first ``top`` clips of the review queue in ``order`` (rows, each with why it was picked: the
    ``suspect`` order is the audit's ``suspect_rank``) and the row indices of a uniform random sample of all clips.

    The sample stays in its random order: sorted by rank it would show the suspects first. It is drawn apart from
    the queue, whatever its order, so that the accuracy estimate from it stays unbiased.
    """
    queue = next_batch(order, review_pool(table, class_names, kind), n=top, seed=seed) if top else []
    rng = np.random.default_rng([seed, 0xA0D1])
    sample = rng.choice(table.num_rows, size=min(random_sample, table.num_rows), replace=False).tolist()
    return queue, sample


def _item(row: dict[str, Any], class_names: tuple[str, ...], assets: dict[str, Any]) -> dict[str, Any]:
    return {"clip_id": row["clip_id"], "uri": row["uri"], "start_s": row.get("start_s"), "end_s": row.get("end_s"),
            "source": source_url(row["clip_id"], row.get("group")),
            "given": row["given_labels"], "suggested": row["suggested_labels"],
            "quality": round(float(row["label_quality"]), 4), "flagged": bool(row["flagged"]),
            "rank": int(row["suspect_rank"]),
            "probs": {c: round(float(row[f"prob_{c}"]), 4) for c in class_names}, **assets}


def queue_item(row: dict[str, Any], class_names: tuple[str, ...], assets: dict[str, Any],
               reason: str) -> dict[str, Any]:
    """A clip of the review queue as the page shows it: :func:`_item` and why the order picked it."""
    return {**_item(row, class_names, assets), "reason": reason}


def page_items(review_dir: str) -> frozenset[tuple[str, str]]:
    """The (sample, clip_id) pairs the review page at ``review_dir`` shows: the only clips a verdict may be about.

    Read back from the data the page inlines (:func:`render_page`), so an audit
    reviewed before this existed needs nothing new.
    """
    data = inlined_data(review_dir)
    added = [item["clip_id"] for item in queued(review_dir)]
    return frozenset([(sample, item["clip_id"]) for sample in ("suspects", "random") for item in data[sample]]
                     + [("suspects", clip_id) for clip_id in added])


def inlined_data(review_dir: str) -> dict[str, Any]:
    """The data :func:`render_page` inlined in the review page at ``review_dir``."""
    fs, path = filesystem(join(review_dir, PAGE))
    reader = _ScriptText(_PAGE_DATA)
    reader.feed(fs.cat_file(path).decode("utf-8"))
    reader.close()
    if reader.text is None:
        raise AuditError(f"audit: {join(review_dir, PAGE)} holds no audit data; rebuild it with "
                         "`acoustic-env audit-review --review-top N`")
    return json.loads(reader.text)


class _ScriptText(HTMLParser):
    """The text of the page's script element of one id, read by the standard HTML tokenizer (no pattern to keep
    in step with the template's markup; a script's text is raw up to its end tag)."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=False)
        self.element_id, self.inside = element_id, False
        self.text: str | None = None  # None: no such element (yet)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inside = tag == "script" and ("id", self.element_id) in attrs and self.text is None
        if self.inside:
            self.text = ""

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        self.inside = False


def queued(review_dir: str) -> list[dict[str, Any]]:
    """The clips the review server added to the queue after the page was built (``QUEUE_FILE``), as page items."""
    fs, path = filesystem(join(review_dir, QUEUE_FILE))
    return json.loads(fs.cat_file(path)) if fs.exists(path) else []


#: JSON's own escapes for the characters HTML reads inside a script element: a clip id or label from someone
#: else's list (``</script>``, ``<!--<script>``, which switches the tokenizer to its double-escaped state and
#: hides the page's own script) stays text. They occur only inside JSON strings, where ``\u003c`` reads as ``<``.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def render_page(page_data: dict[str, Any]) -> str:
    """The review page with ``page_data`` inlined as JSON that no string in it can end or hide (``_SCRIPT_SAFE``),
    and the one CSV writer's rule (``csv_writer.RULE``) for its export."""
    template = resources.files("acoustic_env.pages").joinpath("review_page.html").read_text()
    return (template.replace("__CSV_RULE__", json.dumps(CSV_RULE).translate(_SCRIPT_SAFE))
            .replace("__AUDIT_DATA__", json.dumps(page_data, sort_keys=True).translate(_SCRIPT_SAFE)))


def build_review(table: pa.Table, summary: dict[str, Any], output: str, top: int, random_sample: int,
                 seed: int = 0) -> str:
    """Write ``<output>/review/`` (page + assets) for ``table`` (the audit table); return the page's URI."""
    review_dir = join(output, REVIEW_DIR)
    class_names = tuple(summary["task"]["classes"])
    order = summary["config"].get("review_order", "suspect")  # an audit from before the orders: today's
    queue, sample = choose_items(table, top, random_sample, seed, class_names, summary["task"]["kind"], order)
    suspects = [p.index for p in queue]
    chosen = sorted(set(suspects) | set(sample))
    rows = dict(zip(chosen, table.take(pa.array(chosen, pa.int64())).to_pylist()))
    assets = {i: write_assets(rows[i], review_dir) for i in chosen}
    noise = summary["noise"]
    page_data = {
        "audit_id": summary["audit_id"], "task": summary["task"]["name"], "kind": summary["task"]["kind"],
        "classes": list(class_names), "spec_axes": SPEC_AXES,
        "model": summary.get("model", {}).get("chosen", summary["config"]["classifier"]),
        "folds": summary["config"]["folds"],
        "n_clips": summary["counts"]["audited"], "n_flagged": summary["counts"]["flagged"],
        "estimated_wrong_share": noise["estimated_wrong_share"], "per_class": noise["per_class"],
        "review_order": order, "adaptive": order in ADAPTIVE, "batch": BATCH, "seed": seed,
        "suspects": [queue_item(rows[p.index], class_names, assets[p.index], p.reason) for p in queue],
        "random": [_item(rows[i], class_names, assets[i]) for i in sample],
    }
    page_uri = join(review_dir, PAGE)
    fs, path = filesystem(page_uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, render_page(page_data).encode())
    return page_uri
