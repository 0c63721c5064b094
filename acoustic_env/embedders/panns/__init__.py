"""PANNs CNN14 (Kong et al. 2020), the 16 kHz model: a 2048-d embedding and 527 AudioSet scores.

What every layer knows of it without loading it: :data:`SPEC`. The network and its front
end are in :mod:`.model`, imported only to load the model (it needs torch). The release is
a PyTorch checkpoint, downloaded as it is: nothing to convert.
"""

from __future__ import annotations

from acoustic_env.vocabulary.classes import panns_class_names
from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.registry import lazy
from acoustic_env.embedders.weights import WeightsSpec

SPEC = EmbedderSpec(
    name="panns", dim=2048, sample_rate=SAMPLE_RATE, score_names=panns_class_names(),
    load=lazy("acoustic_env.embedders.panns.model", "load"),
    # CNN14 pools over time inside the network; no frame pooling is added.
    pooling="CNN14's own (max + mean over time, then fc1)",
    score_pooling="CNN14's own clip-level output",
    # The 16 kHz CNN14 from the PANNs release (Zenodo record 3987831). Zenodo lists
    # md5 362fc5ff...; the SHA-256 and size are those several independent public
    # projects record for this same file (each matching Zenodo's md5).
    weights=WeightsSpec(
        name="panns",
        filename="Cnn14_16k_mAP=0.438.pth",
        source="https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1",
        sha256="e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
        size=358_668_570,
        md5="362fc5ff18f1d6ad2f6d464b45893f2c",
    ),
    memory=1.8 * 2**30, max_batch_cpu=8, max_batch_cuda=32, pca=400,
)
