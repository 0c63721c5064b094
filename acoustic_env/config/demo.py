"""The config of ``acoustic-env demo``: labelled synthetic soundscapes, and the jobs run on them locally."""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import _seed
from acoustic_env.config.extraction import FeatureParams
from acoustic_env.config.schema import Section, like, option


@dataclass(frozen=True)
class DemoConfig(Section):
    """Labelled synthetic soundscapes, and the jobs run on them locally (``acoustic-env demo``)."""

    output: str = option("demo-output", role="output", help="where the demo writes")
    clips: int = option(200, ge=1, help="number of clips to generate")
    seed: int = _seed("seed of the data and the jobs")
    duration: float = option(10.0, gt=0, help="clip length in seconds")
    features_impl: str | None = like(FeatureParams, "impl", default=None)
    progress: bool = option(True, help="progress bars")
