"""Job configuration: one frozen dataclass per job, each field declared once.

Every field's declaration carries its help and its rules; the flags, the config-file
reading and the validation derive from it (:mod:`.schema`; the flags: :mod:`.flags`). One module per concept: :mod:`.common` (the
names and fields the jobs share), :mod:`.extraction`, :mod:`.learning` (train, audit), :mod:`.labelling`
(annotate, serve), :mod:`.search` and :mod:`.audioset`; this package hands their names on. A bad value must stop the
job *before* Ray starts, with one line that names the field
(``ConfigError: features.mps_n_wt: must be an odd integer >= 3, got 4``), instead of a
traceback from inside an actor twenty minutes later.
"""

from __future__ import annotations

from acoustic_env.config.common import (
    BASELINE_CHOICES,
    BASELINES,
    CANDIDATES,
    CLASSIFIERS,
    DEVICES,
    EMBEDDERS,
    FEATURE_GROUPS,
    FILTERS,
    HAND_MADE,
    IMAGE_MODELS,
    IN_PROCESS_MAX,
    MIN_HOP_S,
    SIGNAL_SETS,
    SIGNALS,
    SOURCES,
)
from acoustic_env.config.extraction import DecodeParams, ExtractConfig, FeatureParams, WindowParams
from acoustic_env.config.labelling import AnnotateConfig, ServeConfig
from acoustic_env.config.learning import AuditConfig, TrainConfig
from acoustic_env.config.flags import add_flags, from_args
from acoustic_env.config.search import IndexConfig, SearchConfig
from acoustic_env.config.schema import ConfigError, Section, from_dict, load_config_file, option, require, validate

__all__ = ["BASELINE_CHOICES", "BASELINES", "CANDIDATES", "CLASSIFIERS", "DEVICES", "EMBEDDERS", "FEATURE_GROUPS",
           "FILTERS", "HAND_MADE", "IMAGE_MODELS", "IN_PROCESS_MAX", "MIN_HOP_S", "SIGNALS", "SIGNAL_SETS", "SOURCES", "AnnotateConfig", "AuditConfig",
           "ConfigError", "DecodeParams", "ExtractConfig", "FeatureParams", "IndexConfig", "SearchConfig", "Section", "ServeConfig", "TrainConfig",
           "WindowParams", "add_flags", "from_args", "from_dict", "load_config_file", "option", "require",
           "validate"]
