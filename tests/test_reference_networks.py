"""Our three networks against their reference definitions, with the same random weights.

The pretrained files are not available in tests, so each network is checked for what it
*is*: CNN14 and VGGish run side by side with the reference implementations' own module
definitions (panns-inference's ``Cnn14``, torchvggish's ``VGG``), both given the same
seeded random weights, on the same short clips; YAMNet, whose only reference is Keras
code, is checked layer by layer against the published layer table. A change to pooling,
a layer, a stride or a post-processing step fails here, in the fast suite.

Tolerances: both sides compute in float32 with the same operations, so outputs may differ
only by float rounding; we allow 1e-5 of the output's scale (its largest magnitude; the
differences seen are under 1e-6 of it). Post-processed VGGish values are quantised levels
and must be equal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvggish import torchvggish

from acoustic_env.embedders.frontend import GoogleLogMel
from acoustic_env.embedders.panns import model as panns
from acoustic_env.embedders.vggish import model as vggish
from acoustic_env.embedders.yamnet import model as yamnet

SR = 16000
TOLERANCE_OF_SCALE = 1e-5


def _audio(seconds: float, seed: int, n: int = 2) -> np.ndarray:
    """Tone plus noise at 16 kHz, [n, samples] float32: excites every mel band."""
    t = np.arange(round(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal((n, t.size))
    return wave.astype(np.float32)


def _assert_close(ours: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor,
                  what: str) -> None:
    """Equal up to float rounding: |ours - reference| <= 1e-5 * max |reference|."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != reference {reference.shape}"
    scale = float(np.abs(reference).max())
    assert scale > 0, f"{what}: the reference output is all zeros, which tests nothing"
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE_OF_SCALE * scale, err_msg=what)


@contextlib.contextmanager
def _no_random_init(*init_functions: tuple[object, str]) -> Iterator[None]:
    """Build reference modules without drawing random weights (tens of millions of them).

    Every parameter the reference initialises this way is then overwritten with ours by
    ``load_state_dict``, which the tests check; only computed constants (CNN14's front
    end) keep the reference's own values.
    """
    with pytest.MonkeyPatch.context() as patch:
        for layer in (nn.Conv2d, nn.Linear):
            patch.setattr(layer, "reset_parameters", lambda self: None)
        for owner, name in init_functions:
            patch.setattr(owner, name, lambda *args: None)
        yield


# --- PANNs CNN14 against panns-inference's Cnn14 ----------------------------------------------

_REFERENCE_PACKAGE = "_panns_inference_reference"


@pytest.fixture(scope="module")
def panns_models() -> Iterator[types.ModuleType]:
    """panns-inference's ``models.py``, loaded from its file without its package.

    Importing ``panns_inference`` runs its ``config`` module, which downloads AudioSet's
    label file with ``wget``. ``find_spec`` only locates the package (a top-level spec is
    found without executing ``__init__``); ``models.py`` is then executed under a stand-in
    package whose path is the same folder, so its one relative import
    (``.pytorch_utils``: torch only) resolves there. ``models.py`` itself imports
    torch, numpy, matplotlib and torchlibrosa, none of which downloads anything.
    """
    spec = importlib.util.find_spec("panns_inference")
    assert spec is not None and spec.submodule_search_locations, (
        "panns-inference (a test dependency) is not installed: "
        "pip install -c constraints.txt -e '.[test]'")
    folder = Path(next(iter(spec.submodule_search_locations)))
    package = types.ModuleType(_REFERENCE_PACKAGE)
    package.__path__ = [str(folder)]
    sys.modules[_REFERENCE_PACKAGE] = package
    try:
        models_spec = importlib.util.spec_from_file_location(f"{_REFERENCE_PACKAGE}.models",
                                                             folder / "models.py")
        models = importlib.util.module_from_spec(models_spec)
        sys.modules[models_spec.name] = models
        models_spec.loader.exec_module(models)
        assert not {"panns_inference", "panns_inference.config"} & set(sys.modules), (
            "panns_inference's package (whose config downloads files) was imported")
        yield models
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == _REFERENCE_PACKAGE]:
            del sys.modules[name]


def _calibrated_cnn14() -> panns.Cnn14:
    """Seeded random CNN14 whose batch-norm statistics come from one pass over other audio.

    Calibrated statistics keep every layer's activations near unit scale, so the
    embedding is far from zero and the class scores are spread out, not saturated: a
    wrong pooling or layer moves them well past the tolerance.
    """
    torch.manual_seed(7)
    network = panns.Cnn14()
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 1.0  # running statistics := this batch's
    network.train()
    with torch.no_grad():
        network(torch.from_numpy(_audio(1.0, seed=99)))
    return network.eval()


def test_cnn14_matches_panns_inference_definition(panns_models: types.ModuleType) -> None:
    """Two clips of 1.3 s and 1.0 s in one zero-padded batch, through our embedder and theirs.

    The reference runs each clip on its own (as panns-inference's ``AudioTagging`` does)
    with its own front end (torchlibrosa's STFT and mel matrix; only the network's
    trained parameters are copied), at the 16 kHz release's settings.
    """
    ours = _calibrated_cnn14()
    with _no_random_init((panns_models, "init_layer")):
        reference = panns_models.Cnn14(
            sample_rate=panns.SAMPLE_RATE, window_size=panns.WINDOW, hop_size=panns.HOP,
            mel_bins=panns.MEL_BINS, fmin=panns.FMIN, fmax=panns.FMAX,
            classes_num=panns.NUM_CLASSES).eval()
    front_end = ("spectrogram_extractor.", "logmel_extractor.")
    trained = {k: v for k, v in ours.state_dict().items() if not k.startswith(front_end)}
    result = reference.load_state_dict(trained, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith(front_end) for k in result.missing_keys)

    clips = [_audio(1.3, seed=1, n=1)[0], _audio(1.0, seed=2, n=1)[0]]  # 4 and 3 time steps
    batch = np.zeros((2, clips[0].size), dtype=np.float32)
    for i, clip in enumerate(clips):
        batch[i, : clip.size] = clip
    got = panns.PannsEmbedder(ours, "random").embed(batch, np.array([c.size for c in clips]))
    with torch.no_grad():
        expected = [reference(torch.from_numpy(clip)[None]) for clip in clips]
    _assert_close(got["panns"], torch.cat([e["embedding"] for e in expected]), "CNN14 embedding")
    _assert_close(got["panns_scores"], torch.cat([e["clipwise_output"] for e in expected]),
                  "CNN14 class scores")


# --- VGGish against torchvggish's VGG ----------------------------------------------------------


@pytest.fixture(scope="module")
def vggish_pair() -> tuple[vggish.VGGish, torchvggish.VGG]:
    """Our VGGish with seeded random weights, and torchvggish's VGG holding the same weights.

    The two state dicts list the same parameters in the same order (six convolutions,
    then the three dense layers); they are paired by position, each pair's shapes equal.
    """
    torch.manual_seed(11)
    ours = vggish.VGGish().eval()
    with _no_random_init():
        reference = torchvggish.VGG(torchvggish.make_layers(), postprocess=False).eval()
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    assert len(ours_state) == len(ref_state)
    for (name, value), (ref_name, ref_value) in zip(ours_state.items(), ref_state.items(), strict=True):
        assert value.shape == ref_value.shape, f"{name} {value.shape} vs {ref_name} {ref_value.shape}"
    reference.load_state_dict(dict(zip(ref_state, ours_state.values(), strict=True)), strict=True)
    return ours, reference


def _torchvggish_outputs(reference: torchvggish.VGG,
                         patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvggish's last dense layer's output (before its in-place ReLU), and what it returns."""
    last = [m for m in reference.embeddings if isinstance(m, nn.Linear)][-1]
    kept: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda module, inputs, out: kept.append(out.clone()))
    try:
        with torch.no_grad():
            returned = reference(patches)
    finally:
        handle.remove()
    return kept[0], returned


def test_vggish_matches_torchvggish_definition(
        vggish_pair: tuple[vggish.VGGish, torchvggish.VGG]) -> None:
    """Two 2-s clips: our embedder's per-patch and clip embeddings against torchvggish's VGG.

    One documented difference: torchvggish ends in a ReLU, while Google's published
    network (``vggish_slim.py``: ``fc2`` with ``activation_fn=None``) and ours give the
    pre-activation embedding. So ours must equal torchvggish's last dense layer's output,
    and ReLU(ours) its returned output.
    """
    ours, reference = vggish_pair
    embedder = vggish.VGGishEmbedder(ours, "random")
    clips = _audio(2.0, seed=3)
    frontend = GoogleLogMel(vggish.LOG_OFFSET, vggish.PATCH_HOP)
    patches = torch.cat([frontend(torch.from_numpy(clip)) for clip in clips]).float()[:, None]
    pre_activation, returned = _torchvggish_outputs(reference, patches)
    frames = np.concatenate([embedder.embed_frames(clip)["vggish"] for clip in clips])
    _assert_close(frames, pre_activation, "VGGish embedding (last dense layer)")
    _assert_close(np.maximum(frames, 0), returned, "ReLU(VGGish embedding) vs torchvggish")
    per_clip = pre_activation.reshape(len(clips), -1, vggish.EMBEDDING_DIM).mean(dim=1)
    _assert_close(embedder.embed(clips)["vggish"], per_clip, "VGGish clip embedding (mean)")


def test_vggish_postprocessing_matches_torchvggish(
        vggish_pair: tuple[vggish.VGGish, torchvggish.VGG], monkeypatch: pytest.MonkeyPatch) -> None:
    """Our PCA/whitening + quantisation against torchvggish's ``Postprocessor``, same parameters.

    Both post-process the same raw per-patch embeddings (our network's; the network itself
    is checked above). One documented difference: torchvggish rounds to the nearest level,
    while Google's ``vggish_postprocess.py`` (and ours) truncates with ``astype(np.uint8)``.
    With that one step made Google's (floor, which is truncation on [0, 255]) the two must
    be equal; unchanged, torchvggish is never below ours and at most one level above.
    The PCA parameters are a random rotation scaled so that some values clip.
    """
    network, _ = vggish_pair
    clips = _audio(2.0, seed=4)
    plain = vggish.VGGishEmbedder(network, "random")
    raw = torch.from_numpy(np.concatenate([plain.embed_frames(c)["vggish"] for c in clips])).double()
    rng = np.random.default_rng(5)
    rotation = np.linalg.qr(rng.standard_normal((vggish.EMBEDDING_DIM,) * 2))[0]
    centre = raw.mean(dim=0, keepdim=True)
    matrix = rotation * (1.5 / float((raw - centre).std()))
    means = centre.numpy().T  # a column, as Google's and torchvggish's code broadcast it

    postprocessed = vggish.VGGishEmbedder(network, "random",
                                          postprocessor=vggish.Postprocessor(matrix, means))
    ours = np.concatenate([postprocessed.embed_frames(c)["vggish"] for c in clips])

    theirs = torchvggish.Postprocessor.__new__(torchvggish.Postprocessor)  # its __init__ downloads
    theirs._pca_matrix = torch.from_numpy(matrix)
    theirs._pca_means = torch.from_numpy(means)
    rounded = theirs.postprocess(raw).numpy()
    with monkeypatch.context() as patch:
        patch.setattr(torch, "round", torch.floor)
        truncated = theirs.postprocess(raw).numpy()
    assert {0.0, 255.0} <= set(np.unique(ours)), "the test's PCA scale should make some values clip"
    np.testing.assert_array_equal(ours, truncated.astype(np.float32))
    assert set(np.unique(rounded - ours)) <= {0.0, 1.0}


# --- YAMNet against its published layer table ----------------------------------------------------

# tensorflow/models, research/audioset/yamnet/yamnet.py, ``_YAMNET_LAYER_DEFS``:
# (layer_function, kernel, stride, num_filters). ``conv``: a Conv2D; ``separable``: a
# DepthwiseConv2D (depth_multiplier 1) then a 1×1 Conv2D; every convolution without bias
# and followed by BatchNormalization(center=True, scale=False, epsilon=1e-4) and ReLU
# (params.py). Then GlobalAveragePooling2D, Dense(521) with bias, sigmoid.
YAMNET_LAYER_DEFS = (
    ("conv", (3, 3), 2, 32),
    ("separable", (3, 3), 1, 64),
    ("separable", (3, 3), 2, 128),
    ("separable", (3, 3), 1, 128),
    ("separable", (3, 3), 2, 256),
    ("separable", (3, 3), 1, 256),
    ("separable", (3, 3), 2, 512),
    ("separable", (3, 3), 1, 512),
    ("separable", (3, 3), 1, 512),
    ("separable", (3, 3), 1, 512),
    ("separable", (3, 3), 1, 512),
    ("separable", (3, 3), 1, 512),
    ("separable", (3, 3), 2, 1024),
    ("separable", (3, 3), 1, 1024),
)
YAMNET_CLASSES = 521  # params.py: num_classes
YAMNET_BN_EPSILON = 1e-4  # params.py: batchnorm_epsilon
# The YAMNet README: "the classifier has 3.7M weights and performs 69.2M multiplies for
# each 960ms input frame", and the top of the convolution is "a 3x2 array of activations
# for 1024 kernels" for a 96×64 patch.
PUBLISHED_WEIGHTS_M, PUBLISHED_MULTIPLIES_M, PUBLISHED_TOP = 3.7, 69.2, (1024, 3, 2)


def _table_parameter_shapes() -> dict[str, tuple[int, ...]]:
    """Every trainable parameter and batch-norm statistic the table implies, in our names.

    Keras kernels are HWIO; PyTorch's are OIHW (depthwise: [channels, 1, h, w]).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 1

    def batch_norm(prefix: str, channels: int) -> None:  # beta, moving mean, moving variance
        for name in ("bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)

    for i, (kind, kernel, _, filters) in enumerate(YAMNET_LAYER_DEFS):
        layer = f"layers.{i}"
        if kind == "conv":
            shapes[f"{layer}.conv.weight"] = (filters, c_in, *kernel)
            batch_norm(f"{layer}.bn", filters)
        else:
            shapes[f"{layer}.depthwise.weight"] = (c_in, 1, *kernel)
            batch_norm(f"{layer}.depthwise_bn", c_in)
            shapes[f"{layer}.pointwise.weight"] = (filters, c_in, 1, 1)
            batch_norm(f"{layer}.pointwise_bn", filters)
        c_in = filters
    shapes["logits.weight"] = (YAMNET_CLASSES, c_in)
    shapes["logits.bias"] = (YAMNET_CLASSES,)
    return shapes


def _conv_bn_relu(x: torch.Tensor, conv: nn.Conv2d, norm: nn.Module, stride: int) -> torch.Tensor:
    """One Keras conv (no bias, 'same' padding) → BatchNormalization(scale=False) → ReLU."""
    x = F.conv2d(yamnet.same_pad(x, conv.kernel_size[0], stride), conv.weight, stride=stride,
                 groups=conv.groups)
    std = torch.sqrt(norm.running_var + YAMNET_BN_EPSILON)
    return F.relu((x - norm.running_mean[:, None, None]) / std[:, None, None]
                  + norm.bias[:, None, None])


def test_yamnet_layers_match_the_published_table() -> None:
    """Each layer's kind, kernel, stride and widths, and its output as the table's ops give it."""
    network = _seeded_yamnet()
    assert len(network.layers) == len(YAMNET_LAYER_DEFS)
    x = _yamnet_patch()
    c_in = 1
    for i, (layer, (kind, kernel, stride, filters)) in enumerate(
            zip(network.layers, YAMNET_LAYER_DEFS, strict=True)):
        # (conv, its batch norm, kernel, stride, in, out, groups), in the order Keras applies them
        if kind == "conv":
            assert isinstance(layer, yamnet.ConvLayer), f"layer{i + 1} should be a plain conv"
            steps = [(layer.conv, layer.bn, kernel, stride, c_in, filters, 1)]
        else:
            assert isinstance(layer, yamnet.SeparableLayer), f"layer{i + 1} should be separable"
            steps = [(layer.depthwise, layer.depthwise_bn, kernel, stride, c_in, c_in, c_in),
                     (layer.pointwise, layer.pointwise_bn, (1, 1), 1, c_in, filters, 1)]
        expected = x
        for conv, norm, k, s, cin, cout, groups in steps:
            assert (conv.kernel_size, conv.stride, conv.in_channels, conv.out_channels,
                    conv.groups, conv.bias) == (k, (s, s), cin, cout, groups, None), f"layer{i + 1}"
            # center=True, scale=False: a shift, no scale parameter
            assert [n for n, _ in norm.named_parameters()] == ["bias"], f"layer{i + 1}"
            with torch.no_grad():
                expected = _conv_bn_relu(expected, conv, norm, s)
        with torch.no_grad():
            x = layer(x)
        _assert_close(x, expected, f"layer{i + 1} output")
        c_in = filters
    assert (network.logits.in_features, network.logits.out_features) == (c_in, YAMNET_CLASSES)


def _seeded_yamnet() -> yamnet.YAMNet:
    """Seeded random YAMNet whose activations keep their scale through the 14 layers.

    PyTorch's default initialisation shrinks them about tenfold per layer, which would
    leave an embedding near 1e-11 and scores all near sigmoid(bias); He initialisation
    keeps them near unit scale. Batch-norm statistics and shifts are made non-trivial so
    that each one matters.
    """
    torch.manual_seed(13)
    network = yamnet.YAMNet().eval()
    with torch.no_grad():
        for name, tensor in [*network.named_parameters(), *network.named_buffers()]:
            if name.endswith("running_mean") or (name.endswith("bias") and "logits" not in name):
                tensor.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.ndim == 4:
                nn.init.kaiming_normal_(tensor, nonlinearity="relu")
    return network


def _yamnet_patch() -> torch.Tensor:
    """One 96×64 log-mel patch [1, 1, 96, 64] of a 1-s clip, YAMNet's front end."""
    wave = torch.from_numpy(_audio(1.0, seed=6, n=1)[0])
    return GoogleLogMel(yamnet.LOG_OFFSET, yamnet.PATCH_HOP)(wave).float()[:1, None]


def test_yamnet_parameters_and_multiplies_match_the_table() -> None:
    """Parameter names and shapes as the table implies; totals as the YAMNet README states."""
    network = _seeded_yamnet()
    expected = _table_parameter_shapes()
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == expected
    weights = sum(p.numel() for p in network.parameters())
    statistics = ("running_mean", "running_var")
    assert weights == sum(int(np.prod(s)) for k, s in expected.items() if not k.endswith(statistics))
    assert round(weights / 1e6, 1) == PUBLISHED_WEIGHTS_M

    multiplies = [network.logits.in_features * network.logits.out_features]
    tops: list[torch.Tensor] = []

    def count(conv: nn.Conv2d, inputs: object, output: torch.Tensor) -> None:
        per_output = conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels // conv.groups
        multiplies.append(output[0].numel() * per_output)

    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(count)
    network.layers.register_forward_hook(lambda m, i, out: tops.append(out))
    with torch.no_grad():
        embedding, scores = network(_yamnet_patch())
    [top] = tops
    assert tuple(top.shape[1:]) == PUBLISHED_TOP
    assert round(sum(multiplies) / 1e6, 1) == PUBLISHED_MULTIPLIES_M
    pooled = top.mean(dim=(2, 3))  # global average pooling, then a sigmoid classifier
    _assert_close(embedding, pooled, "YAMNet embedding = average pool of the top")
    with torch.no_grad():
        _assert_close(scores, torch.sigmoid(network.logits(pooled)), "YAMNet scores = sigmoid(dense)")
