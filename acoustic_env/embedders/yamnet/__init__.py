"""YAMNet: Google's MobileNet-v1 AudioSet tagger, a 1024-d embedding and 521 class scores.

What every layer knows of it without loading it: :data:`SPEC`. The network, its front end
and the conversion from the TensorFlow release are in :mod:`.model`, imported only to load
or convert the model (it needs torch).
"""

from __future__ import annotations

from acoustic_env.vocabulary.classes import yamnet_class_names
from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.registry import lazy
from acoustic_env.embedders.weights import WeightsSpec

SPEC = EmbedderSpec(
    name="yamnet", dim=1024, sample_rate=SAMPLE_RATE, score_names=yamnet_class_names(),
    load=lazy("acoustic_env.embedders.yamnet.model", "load"),
    # Published only for TensorFlow: `models convert yamnet` builds the PyTorch checkpoint
    # from the TF-Hub release, checked against its outputs.
    weights=WeightsSpec(name="yamnet", filename="yamnet.pt",
                        source="https://tfhub.dev/google/yamnet/1", converted=True),
    convert=lazy("acoustic_env.embedders.yamnet.model", "from_tf"),
    memory=0.9 * 2**30, max_batch_cpu=64, max_batch_cuda=1024, pca=400,
)
