"""acoustic-env: distributed feature extraction, environment classification and label audit for audio collections.

The public API (see ``acoustic_env.api`` for a notebook example)::

    import acoustic_env as ae
    ae.extract(manifest, output, ...)      ae.read_features(source, ...)
    ae.train(features, output, ...)        ae.audit(features, output, ...)
    ae.annotate(manifest, model, features, output, ...)
    ae.load_model(uri)                     # numpy, torch, pyarrow, fsspec; no Ray
    ae.predict(files, model)               # label a few files in-process (more: via extract)
    ae.predict_windows(files, model)       # long recordings: a table of windows and a summary per file
    ae.search(features, example)           # the clips nearest to an example clip or audio file
    ae.run(command, **fields)              # any catalogued job by its command's name (jobs/catalog.py)

Names are imported on first use, so ``import acoustic_env`` (and ``acoustic-env --help``)
stays fast and loads neither Ray nor torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "api", "extract": "api", "train": "api", "audit": "api", "annotate": "api", "predict": "api",
    "predict_windows": "api", "WindowResult": "jobs.windows", "search": "api", "Found": "jobs.search",
    "ExtractResult": "jobs.results", "TrainResult": "jobs.results", "AuditResult": "jobs.results",
    "AnnotateResult": "jobs.results",
    "read_features": "table", "FeatureSet": "table",
    "load_model": "learn.artifact", "Model": "learn.artifact",
    "ConfigError": "config", "ExtractConfig": "config", "TrainConfig": "config", "AuditConfig": "config",
    "AnnotateConfig": "config", "SearchConfig": "config",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"acoustic_env.{_EXPORTS[name]}"), name)
