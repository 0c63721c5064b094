"""The configs of ``acoustic-env audioset sample``, ``fetch`` and ``rescore``, each field declared once.

Kept beside the jobs' configs (:mod:`acoustic_env.config`) and built from the same
declarations (:mod:`.schema`), so the flags, the ``--config`` file and the one-line
errors work as on every other command.
"""

from __future__ import annotations

import string
import subprocess
from dataclasses import dataclass
from typing import Any

from acoustic_env.config.common import _absolute, _location, _ontology, _ray_address, _seed, _task
from acoustic_env.config.schema import ConfigError, Section, option, require

#: The downloader the fetch job runs per segment when none is configured: yt-dlp fetches the
#: video's best audio stream, ffmpeg cuts the segment (both the user's to install, and to use
#: under YouTube's terms). ``{url}``, ``{start}``, ``{end}``, ``{duration}``, ``{out}``,
#: ``{ytid}`` and ``{tmp}`` are filled in per segment, each shell-quoted; ``{out}`` must be
#: written (ffmpeg encodes by its extension, ``clip_format``). yt-dlp's own ``%(ext)s`` is
#: quoted here: a bare ``(`` is a shell syntax error.
DEFAULT_DOWNLOADER = (
    "yt-dlp --quiet --no-warnings --no-playlist --format bestaudio "
    "--output {tmp}/'source.%(ext)s' {url} && "
    "ffmpeg -nostdin -loglevel error -y -ss {start} -t {duration} -i {tmp}/source.* -vn -ac 1 {out}"
)
URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"
PLACEHOLDERS = ("url", "ytid", "start", "end", "duration", "out", "tmp")
#: The most clips a sample may ask for (per class or in all): a thousand times AudioSet's largest list.
MAX_CLIPS = 2_000_000_000


def _targets(value: Any) -> dict[str, int]:
    """``urban=6500,natural=6800`` (a flag) or a mapping (a config file) → {class: clips}."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise TypeError(f"must be CLASS=N pairs, comma-separated, got {value!r}")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict):
        raise TypeError(f"must be a mapping of class to clips (or CLASS=N,...), got {value!r}")
    out = {}
    for k, v in value.items():
        try:
            n = int(v)
        except (TypeError, ValueError):
            n = -1
        if n < 0 or isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise TypeError(f"{k}: must be an integer >= 0, got {v!r}")
        if n > MAX_CLIPS:
            raise TypeError(f"{k}: must be at most {MAX_CLIPS}, got {v!r}")
        out[str(k)] = n
    return out


def _paths(value: Any) -> tuple[str, ...]:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"must be a list of paths (or comma-separated text), got {value!r}")
    return tuple(_absolute(v) for v in items)


@dataclass(frozen=True)
class SampleConfig(Section):
    """Which clips of a segment list to take for a task, and how many of each class."""

    segments: str = _location(help="an AudioSet segment list in its published format (local path or URL)")
    output: str = _location(help="the sample: a segment list in the same format (its report goes beside it, "
                                 "<name>.report.json)", role="output_file")
    task: str = _task()
    ontology: str | None = _ontology()
    per_class: int | None = option(None, ge=1, le=MAX_CLIPS, help="clips drawn per class (fewer where a class has fewer)")
    targets: dict[str, int] = option(factory=dict, parse=_targets,
                                     help="clips drawn per class, by name (CLASS=N,...): a class left out gets none")
    total: int | None = option(None, ge=1, le=MAX_CLIPS, help="clips in all: a uniform draw from the eligible clips, or with "
                                                "--balanced an equal share per class")
    balanced: bool = option(False, help="every class gets the same number of clips: the smallest of its share "
                                        "(--per-class, or --total over the classes) and what the rarest class has")
    seed: int = _seed("seed of the draw: the same list, task and seed give the same sample")
    exclude: tuple[str, ...] = option((), parse=_paths, role="input",
                                      help="segment lists whose videos are left out (e.g. eval_segments.csv, "
                                           "so a training sample shares no video with the evaluation list)")

    def cross_check(self) -> None:
        sizes = [name for name in ("per_class", "targets", "total") if getattr(self, name)]
        require(len(sizes) == 1, "per_class", "give exactly one of per_class, targets or total",
                ",".join(sizes) or "none")
        if self.balanced and self.targets:
            raise ConfigError("balanced: per-class targets already fix each class's count; use --per-class or "
                              "--total with --balanced")


@dataclass(frozen=True)
class FetchConfig(Section):
    """Where the segments come from, where the clips go, and how politely they are fetched."""

    segments: str = _location(help="a segment list in AudioSet's published format (e.g. a sample's output)")
    output: str = _location(help="where audio/, manifest.csv, failures/ and runs/ go (local or object storage)",
                            role="output")
    downloader: str = option(DEFAULT_DOWNLOADER, nonempty=True,
                             help="shell command run per segment, with {url} {ytid} {start} {end} {duration} "
                                  "{tmp} {out}; it must write the clip to {out} (the default: yt-dlp fetches, ffmpeg cuts; "
                                  "both yours to install and to use under YouTube's terms)")
    url_template: str = option(URL_TEMPLATE, nonempty=True, help="the {url} of a segment, from its {ytid}")
    clip_format: str = option("flac", choices=("flac", "wav", "ogg", "mp3", "m4a", "opus"),
                              help="the extension of {out} (what the downloader writes)")
    timeout_s: float = option(120.0, gt=0, help="longest a download may take; then it is ended (a timeout row)")
    max_bytes: int = option(64 * 2**20, ge=1, help="a clip file larger than this is refused unread (a too_large row); "
                                                   "a 10-s clip is a few MB")
    rate_per_s: float = option(1.0, gt=0, help="most downloads started per second, over all workers together")
    workers: int = option(2, ge=1, help="downloads running at once (Ray tasks)")
    retry_failed: bool = option(False, help="try again the segments a previous run recorded as failed "
                                            "(without it a recorded failure is final)")
    limit: int | None = option(None, ge=1, help="fetch at most this many segments of the list")
    ray_address: str | None = _ray_address()

    def cross_check(self) -> None:
        names = _placeholders(self.downloader, "downloader", PLACEHOLDERS)
        require("out" in names, "downloader", "must write the clip to {out}", self.downloader)
        require(_placeholders(self.url_template, "url_template", ("ytid",)) == {"ytid"}, "url_template",
                "must hold {ytid} (each segment's video)", self.url_template)
        syntax = _shell_syntax_error(self.downloader.format(**dict.fromkeys(PLACEHOLDERS, "x")))
        require(not syntax, "downloader", f"not a valid /bin/sh command ({syntax}); quote what the shell "
                                          "must not read, e.g. '%(ext)s'", self.downloader)


def _placeholders(template: str, field: str, known: tuple[str, ...]) -> set[str]:
    """The placeholders of a template, checked before anything starts: a positional ``{}``, an attribute
    (``{out.x}``), an index, a conversion or format (``{ytid:>999999999}``) or a name not in ``known`` is one
    line naming the field, not a KeyError (or a gigabyte string) in every download task."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{field}: not a valid template ({exc}); write a literal brace as {{{{ }}}}") from None
    names = {name for _, name, _, _ in parsed if name is not None}
    dressed = [f"{{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
               for _, name, spec, conv in parsed if name is not None and (spec or conv)]
    require(not dressed, field, f"a placeholder takes no conversion or format ({dressed[0] if dressed else ''}): "
                                "each is filled in as it is", template)
    unknown = sorted(names - set(known))
    require(not unknown, field, f"unknown placeholder(s) {unknown} (known: {', '.join(known)})", template)
    return names


def _shell_syntax_error(command: str) -> str | None:
    """/bin/sh's complaint about the command's syntax (``sh -n``: parsed, not run), or None.

    Checked before any download: a template the shell cannot parse would otherwise fail
    every segment, each one recorded as ``unavailable``.
    """
    proc = subprocess.run(["/bin/sh", "-n", "-c", command], capture_output=True, text=True, timeout=10)
    if proc.returncode == 0:
        return None
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"


@dataclass(frozen=True)
class RescoreConfig(Section):
    """An audit, its review's verdicts, and where the rescored label list goes."""

    audit: str = _location(help="the audit's output directory (audit.parquet, summary.json)")
    output: str = _location(help="the rescored list: a segment list with the audit's and the review's columns "
                                 "(<name>.accuracy.json beside it)", role="output_file")
    verdicts: tuple[str, ...] = option((), parse=_paths, help="verdict files of the review (JSON or CSV; "
                                                             "e.g. <audit>/review/verdicts.json)", role="input")
    method: str = option("wilson", choices=("wilson", "bootstrap"), help="interval of the reviewed accuracy")


#: The models of ``audioset frames`` (``learn.audioset_frames``: its ``NETWORKS`` and the pooled model), named here without torch.
FRAME_MODELS = ("frames_cnn", "frames_fc", "study_cnn", "pooled_logreg")
#: Its losses (``learn.audioset_frames.LOSSES``) and input scalings (``jobs.audioset.frames.SCALINGS``), likewise.
FRAME_LOSSES = ("categorical_crossentropy", "binary_crossentropy")
FRAME_INPUTS = ("dequantized", "scaled", "raw")


@dataclass(frozen=True)
class FramesConfig(Section):
    """The released embeddings with their frames kept, the task, and where the comparison goes."""

    features: str = _location(help="the output of `recipe audioset-embeddings --keep-frames` (its frames/)")
    output: str = _location(role="output_file", help="the comparison (JSON): test figures of each model and grid cell")
    task: str = _task()
    ontology: str | None = _ontology()
    test_size: float = option(0.2, gt=0, lt=1, help="share of the videos held out for the test")
    seed: int = _seed("seed of the split and of every model")
    threads: int | None = option(None, ge=1, help="torch threads for the networks (default: torch's choice)")
    models: tuple[str, ...] = option(FRAME_MODELS, choices=FRAME_MODELS, nonempty=True,
                                     help="models compared: frames_cnn (this project's small CNN), frames_fc (the "
                                          "study's fully connected net, 1280/10-100-1000), study_cnn (the study's CNN "
                                          "layer for layer), pooled_logreg (mean + max of the frames)")
    oversample: bool = option(False, help="balance the networks' training rows as the study did: new rows of each "
                                          "rarer class made by shuffling the ten seconds of its training clips "
                                          "(validation and test rows untouched; no class weights then)")
    losses: tuple[str, ...] = option((), choices=FRAME_LOSSES,
                                     help="the networks' losses, each a grid row: categorical_crossentropy (softmax) "
                                          "and/or binary_crossentropy (a sigmoid per class on one-hot targets); "
                                          "default: categorical_crossentropy, or binary_crossentropy with --multi-label")
    batch_sizes: tuple[int, ...] = option((64,), nonempty=True, help="the networks' batch sizes, each a grid row "
                                                                     "(e.g. 32,128)",
                                          check=(lambda v: len(set(v)) == len(v) and all(1 <= b <= 65536 for b in v),
                                                 "must be distinct integers in [1, 65536]"))
    inputs: tuple[str, ...] = option(("dequantized",), choices=FRAME_INPUTS, nonempty=True,
                                     help="how the uint8 codes are fed, each a grid row: dequantized (q x 4/255 - 2, "
                                          "the release's values), scaled (q / 255, the study's normalisation), raw "
                                          "(the codes 0-255)")
    final_pool: tuple[str, ...] = option(("with",), choices=("with", "without"), nonempty=True,
                                         help="study_cnn's optional last max pool: with, without, or both (the "
                                              "study's pooling ablation)")
    multi_label: bool = option(False, help="a sigmoid per class over the task's classes: keep the clips with two or "
                                           "more of them (the study did) instead of leaving them out as ambiguous")

    def cross_check(self) -> None:
        require(not (self.multi_label and self.oversample), "oversample", "balances one class per clip, so not "
                "with --multi-label", self.oversample)
        require(not (self.multi_label and "categorical_crossentropy" in self.losses), "losses",
                "a softmax needs one class per clip: --multi-label takes binary_crossentropy", self.losses)
