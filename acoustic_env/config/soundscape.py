"""The soundscape job's config (``acoustic-env soundscape``): a deployment's recordings over days, per segment.

Each field is declared once, here: the flags, ``--config FILE`` keys, the checks and ``ae.run("soundscape", ...)``
derive from it. The indices are computed with the extract's default index settings
(:class:`~acoustic_env.config.extraction.FeatureParams`: a Hann spectrogram of 1,024 samples, half overlapping, a
3 dB threshold), on each recording's own samples at its own rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import DEVICES, _ray_address
from acoustic_env.config.extraction import ExtractConfig
from acoustic_env.config.schema import Section, like, option, require


@dataclass(frozen=True)
class SoundscapeConfig(Section):
    """Indices, per-bin spectral indices and class shares per segment of every recording of a deployment, placed
    on each site's clock; events, detection histories and a page (``acoustic-env soundscape``)."""

    inputs: tuple[str, ...] = option(positional=True, role="input",
                                     help="recorder files, a directory of them, or a clip list (with site and "
                                          "start_time columns, or recorder file names)")
    output: str = option(role="output", help="where soundscape.parquet, events/, histories/ and page/ go; a run "
                                             "into the same output scores only the files it has not scored")
    segment_s: float = option(60.0, gt=0, help="segment length in seconds (a file shorter than this is one segment)")
    timezone: str = option("UTC", help="the recorders' clock zone, an IANA name (UTC, Europe/Paris); a clip list's "
                                       "start_time with an offset keeps its own")
    model: str | None = option(None, role="input",
                               help="a trained model (train's <output>/model): per segment each class's mean "
                                    "probability and share of windows, and events")
    window_s: float | None = option(None, gt=0, help="with --model: window length in seconds (default: the model's "
                                                     "training clip length); windows follow each other")
    event_high: float = option(0.7, ge=0, le=1, help="an event starts where a window's probability reaches this")
    event_low: float = option(0.4, ge=0, le=1, help="an event extends over windows whose probability is at least this")
    event_min_duration_s: float = option(0.0, ge=0, help="shorter events are dropped (seconds)")
    event_max_gap_s: float = option(0.0, ge=0, help="windows of a class this many seconds apart or closer are one "
                                                    "event (across consecutive files too)")
    occasion_h: float = option(24.0, gt=0, help="detection histories: hours per survey occasion, from local "
                                                "midnight of the first day")
    span_segments: int = option(60, ge=1, help="segments one worker scores at a time (and one part: a resumed run "
                                               "skips the parts written)")
    in_process_max: int = option(400, ge=0, help="a run that names no Ray cluster with at most this many segments to "
                                                 "score scores them in this process; more go to Ray (0: always Ray)")
    ray_address: str | None = _ray_address()
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    device: str = option("cpu", choices=DEVICES, help="with --model: embedder device")

    def cross_check(self) -> None:
        require(self.event_low <= self.event_high, "event_low", f"must be at most event_high ({self.event_high:g})",
                self.event_low)
