"""The config of ``acoustic-env predict``: a trained model on audio files, a directory or a clip list.

Each field is declared once, here; the fields extract declares already (``audio_root``, ``weights_cache``) are taken
from it with ``like``.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import DEVICES, IN_PROCESS_MAX
from acoustic_env.config.extraction import ExtractConfig, WindowParams
from acoustic_env.config.schema import Section, like, option


@dataclass(frozen=True)
class PredictConfig(Section):
    """A trained model on audio files, a directory or a clip list (``acoustic-env predict``)."""

    inputs: tuple[str, ...] = option(positional=True, role="input",
                                     help="audio files, a directory of them, or a clip list (any extract format)")
    model: str = option(role="input", help="model directory written by train (<output>/model)")
    output: str | None = option(None, role="output",
                                help=f"above {IN_PROCESS_MAX} clips the extract job runs first: its output (default: "
                                     "a temporary directory); with --windows, where each span's windows are written "
                                     "as scored, so that a stopped run resumes (default: not written)")
    audio_root: str | None = like(ExtractConfig, "audio_root", parse=None, role="input")
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    device: str = option("cpu", choices=DEVICES, help="embedder device for in-process prediction (auto: CUDA when "
                                                      "this machine has it)")
    top_tags: int = option(3, ge=0, help="AudioSet tags shown when the model uses a tagger")
    save: str | None = option(None, role="output_file",
                              help="also write the predictions to this .csv or .parquet file (with --windows: the "
                                   "window table, and the summary per file beside it as NAME.summary.csv)")
    selections: str | None = option(None, role="output",
                                    help="with --windows: write a Raven selection table (<file>.selections.txt) and "
                                         "an Audacity label track (<file>.labels.txt) per recording into this "
                                         "directory")
    windows: WindowParams = option(factory=WindowParams, help="long recordings")
