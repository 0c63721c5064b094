"""acoustic-env: distributed feature extraction, environment classification and label audit for audio collections."""

__version__ = "0.1.0"

from .config import ConfigError, ExtractConfig  # noqa: E402

__all__ = ["ConfigError", "ExtractConfig", "__version__"]
