"""VGGish (Hershey et al. 2017): Google's 128-d embedding of 0.96 s log-mel patches.

What every layer knows of it without loading it: :data:`SPEC`. The network, its front end,
Google's PCA post-processing and the conversion from the TensorFlow release are in
:mod:`.model`, imported only to load or convert the model (it needs torch).
"""

from __future__ import annotations

from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.registry import lazy
from acoustic_env.embedders.weights import WeightsSpec

SPEC = EmbedderSpec(
    name="vggish", dim=128, sample_rate=SAMPLE_RATE,
    load=lazy("acoustic_env.embedders.vggish.model", "load"),
    # Google publishes VGGish only for TensorFlow: `models convert vggish` builds the
    # PyTorch checkpoint from the TF-Hub release, checked against its outputs.
    weights=WeightsSpec(name="vggish", filename="vggish.pt",
                        source="https://tfhub.dev/google/vggish/1", converted=True),
    convert=lazy("acoustic_env.embedders.vggish.model", "from_tf"),
    # VGGish's PCA/whitening parameters. No published SHA-256 was found; the md5 is the
    # one public projects check this file against. The SHA-256 seen on first fetch is
    # recorded in the sidecar and checked from then on.
    extra_weights=(WeightsSpec(name="vggish_pca", filename="vggish_pca_params.npz",
                               source="https://storage.googleapis.com/audioset/vggish_pca_params.npz",
                               md5="c80cae691033abe7c7ecd11ea39fc834"),),
    memory=1.4 * 2**30, max_batch_cpu=64, max_batch_cuda=512, pca=128,
)
