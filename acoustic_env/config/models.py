"""The configs of ``acoustic-env models list|fetch|convert``: the pretrained weights in the model cache.

The cache is the option they share with extract (``weights_cache``, declared there); ``convert`` takes one
``--<name>-handle`` per embedder that converts, from the registry (torch-free), so an embedder registered with a
conversion gets its flag.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass

from acoustic_env.config.extraction import ExtractConfig
from acoustic_env.config.schema import Section, like, option
from acoustic_env.embedders.registry import convertible

_NAMES_HELP = "registry names (default: every file with a direct download)"


@dataclass(frozen=True)
class ModelsListConfig(Section):
    """Which weights the cache holds and whether they check out (``acoustic-env models list``)."""

    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    verify: bool = option(True, help="hash each file against its recorded SHA-256 (--no-verify: do not)")


@dataclass(frozen=True)
class ModelsFetchConfig(Section):
    """Weights downloaded into the cache, each checked (``acoustic-env models fetch``)."""

    names: tuple[str, ...] = option((), positional=True, help=_NAMES_HELP)
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    source: str | None = option(None, help="mirror directory or URL (file://, s3://, https://) holding the files")


#: One TF-Hub handle per embedder that converts (``--vggish-handle``; a config file's ``handles: {vggish: ...}``).
Handles = make_dataclass("Handles", [
    (name, str | None, option(None, flag=f"{name}_handle", help=f"TF-Hub handle or SavedModel directory for {name}"))
    for name in convertible()], bases=(Section,), frozen=True)


@dataclass(frozen=True)
class ModelsConvertConfig(Section):
    """Embedders published for TensorFlow only, converted into the cache (``acoustic-env models convert``)."""

    names: tuple[str, ...] = option((), positional=True,
                                    help=f"{' and/or '.join(convertible())} (default: all)")
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    handles: Handles = option(factory=Handles,  # type: ignore[valid-type]
                              help="where each model's TensorFlow release is read from")
