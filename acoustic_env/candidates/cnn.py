"""``cnn``: a CNN over each clip's image (``learn.spectro``, trained by ``learn.spectro_estimator``).

Its ``X`` is [clips, bands, frames] images, not feature vectors (``inputs="images"``: the table needs the ``logmel``
column, log-mel or MFCC). ``blocks`` conv blocks of a named ``architecture`` (:data:`ARCHITECTURES`: ``small``, one
convolution each; ``residual``, ResNet's basic block; ``cnn14``, PANNs CNN14's first blocks, which can start from its
checkpoint: :func:`chosen`'s ``init``), with batch norm and global pooling, of ``width`` channels doubling per
block, on ``crop_frames``-frame crops (averaged over crops covering the clip when it scores), trained with a cosine
learning rate for at most ``max_rounds`` epochs, stopped early on a grouped inner split of the
training rows (it takes the rows' groups). ``device``: where it trains (cpu or cuda). ``augment``: each entry
switches one augmentation (0 or False: off), recorded with the model. No probability map of its inner folds: their
refits would cost two more trainings a fold; it takes one chosen on the other outer folds (``learn.calibrate``).

The architecture (``small`` or ``residual``: :data:`SEARCHED`) and the crop are tuned with the other settings;
train's ``--cnn-architecture`` and ``--cnn-crop-s`` fix them instead (:func:`chosen`). ``cnn14`` is never tuned:
64 channels and more a block on unpooled 64-band images is heavy on a CPU, so only ``--cnn-architecture cnn14``
picks it.
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, numbers, one_of
from acoustic_env.candidates.spec import Build, CandidateSpec
from acoustic_env.registry import lazy

_CNN = lazy("acoustic_env.learn.spectro_estimator", "CNNClassifier")
#: The networks the tuning draws from (``learn.spectro``): the small default, and ResNet-style residual blocks.
SEARCHED = ("small", "residual")
#: Every named network: the tuned ones and PANNs CNN14's blocks (``cnn14``: chosen by name only).
ARCHITECTURES = (*SEARCHED, "cnn14")
#: CNN14's fixed settings (``embedders/panns/model.py``): its 64 mel bands unpooled, blocks of 64, 128, ... channels.
CNN14 = {"bands": 64, "input_pool": [1, 1], "width": 64}
#: Image frames a second (``features/logmel.py``: a hop of 160 samples at 16 kHz, which tests/test_images.py holds
#: this to; the config below imports this module, so it cannot import the features): a crop in seconds to frames.
FRAMES_PER_S = 100


def build(p: dict[str, Any], b: Build) -> Any:
    """The CNN of settings ``p``; torch threads as ``b.threads`` (None: one)."""
    return _CNN(seed=b.seed, threads=b.threads, **p)


# width: the first block's channels; narrow ranges, since on a few hundred clips a wider space chose settings that
# won the inner folds and lost outside (benchmarks/RESULTS.md, the CNN's section)
SPEC = CandidateSpec("cnn", "a CNN over each clip's log-mel or MFCC image", build=build, format="torch",
                     balance="network", inputs="images", calibrated=False, takes_groups=True,
                     params={"val_fraction": 0.2, "max_rounds": 30, "patience": 6, "device": "cpu",
                             "class_weight": None, "balanced_sampler": False,
                             "network": {"architecture": "small", "input_pool": [2, 2], "blocks": 4, "width": 8,
                                         "crop_frames": 200, "dropout": 0.3, "lr": 3e-3, "weight_decay": 1e-3,
                                         "batch_size": 32, "lr_schedule": "cosine"},
                             "augment": {"shift": True, "time_masks": 2, "time_mask": 20, "freq_masks": 2,
                                         "freq_mask": 8, "mixup": 0.2}},
                     space=Space({"architecture": one_of(*SEARCHED), "width": one_of(8, 16),
                                  "crop_frames": one_of(150, 200, 250), "dropout": numbers(0.2, 0.5),
                                  "lr": numbers(1e-3, 4e-3, log=True),
                                  "weight_decay": numbers(1e-4, 1e-2, log=True)}, within="network"),
                     # the split evaluation streams its images (distributed.images), as one run at its defaults
                     trains="stream", restore=lazy("acoustic_env.learn.trained_networks", "cnn_restore"),
                     save=lazy("acoustic_env.learn.trained_networks", "cnn_save"),
                     input_problem=lambda bands, params: image_problem(bands, params["network"]))  # below


def chosen(architecture: str | None, crop_s: float | None, init: dict[str, str] | None = None) -> dict[str, Any]:
    """The network settings train's ``--cnn-architecture`` and ``--cnn-crop-s`` fix (None: tuned); ``cnn14``
    brings its own width and input pooling. ``init``: the checked checkpoint the network starts from
    (``learn.warm_start.panns_init``), recorded with the model's settings."""
    return {**({"architecture": architecture} if architecture else {}),
            **({k: v for k, v in CNN14.items() if k != "bands"} if architecture == "cnn14" else {}),
            **({"crop_frames": round(crop_s * FRAMES_PER_S)} if crop_s else {}),
            **({"init": init} if init else {})}


def image_problem(bands: int, network: dict[str, Any]) -> str | None:
    """Why images of ``bands`` rows do not fit the network of settings ``network`` (None: they do): ``cnn14``
    takes PANNs' 64-band log-mel unpooled, its convolutions and batch norms sized for that."""
    if network.get("architecture") != "cnn14":
        return None
    if bands != CNN14["bands"]:
        return (f"the cnn14 architecture takes 64-band log-mel images (PANNs' front end); these images have {bands} "
                "bands: extract with 64 mel bands, or choose small or residual")
    if list(network["input_pool"]) != CNN14["input_pool"] or int(network["width"]) != CNN14["width"]:
        return (f"the cnn14 architecture takes its images unpooled through blocks of 64, 128, ... channels; got "
                f"input_pool {list(network['input_pool'])} and width {network['width']}")
    return None
