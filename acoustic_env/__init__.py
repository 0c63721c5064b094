"""acoustic-env: distributed feature extraction, environment classification and label audit for audio collections."""

__version__ = "0.1.0"

from acoustic_env.config import ConfigError, ExtractConfig  # noqa: E402


def load_model(uri: str):
    """Load a model artifact written by `acoustic-env train` (needs numpy, torch, pyarrow, fsspec; no Ray)."""
    from acoustic_env.learn.artifact import load_model as _load

    return _load(uri)


__all__ = ["ConfigError", "ExtractConfig", "__version__", "load_model"]
