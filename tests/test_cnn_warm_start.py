"""The CNN warm-started from PANNs CNN14 (train's ``--cnn-architecture cnn14 --cnn-init panns``): the checked
checkpoint's bn0 and first blocks are the network's before it trains, its head is not; a wrong file, a missing one,
another architecture or images of other bands are each one line.

The real release (358 MB) cannot be fetched here: the checkpoint is ``embedders/panns/model.py``'s network with
seeded random weights, written by ``embedders.weights.save_checkpoint`` (with its sidecar, its identity) under the
release's name in a weights cache. The registry pins the release's SHA-256, which that file cannot have: the tests
that must accept it take the pin off the spec (``unpinned``), so that the sidecar's hash is the one checked, as for
a converted file; the test of a wrong file keeps the pin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import acoustic_env as ae
from acoustic_env.candidates import PARAMS
from acoustic_env.candidates.cnn import chosen
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, synthetic_images, write_features
from acoustic_env.embedders import panns, weights
from acoustic_env.embedders.panns.model import Cnn14
from acoustic_env.errors import WeightsError
from acoustic_env.jobs.train import saved as refitted
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.learn import spectro_estimator
from acoustic_env.learn.image_input import stack_images
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import encode_images

#: cnn14 at its smallest: two blocks (64 and 128 channels) over 1-s crops, a round or two.
NETWORK = {**PARAMS["cnn"]["network"], **chosen("cnn14", 1.0), "blocks": 2}
TINY = {**PARAMS["cnn"], "max_rounds": 2, "patience": 1, "network": NETWORK}
FAST = {"ablations": False, "shap_samples": 0, "tuning_trials": 1, "cv_folds": 2, "feature_groups": ["indices_raw"],
        "baselines": ["cnn"], "saved_model": "cnn", "cnn_architecture": "cnn14", "cnn_crop_s": 1.0}


@pytest.fixture(autouse=True)
def tiny_cnn(monkeypatch):
    monkeypatch.setitem(PARAMS, "cnn", TINY)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A weights cache holding a seeded CNN14 checkpoint under the release's name, with its sidecar; its state.

    The network's state less its two widest blocks (280 MB the CNN's few blocks never read); the front end's
    tensors, fc1's and the AudioSet layer's stay, which the copy must leave out."""
    torch.manual_seed(3)
    network = Cnn14()
    with torch.no_grad():  # batch norms that are not at their defaults (a fresh one's), so all of them are seen
        for name, tensor in [*network.named_buffers(), *network.named_parameters()]:
            if "bn" in name and name.endswith(("running_mean", "bias")):
                tensor.uniform_(-0.5, 0.5)
            elif "bn" in name and name.endswith(("running_var", "weight")):
                tensor.uniform_(0.5, 2.0)
    state = {k: v for k, v in network.state_dict().items() if not k.startswith(("conv_block5", "conv_block6"))}
    cache = tmp_path_factory.mktemp("weights")
    weights.save_checkpoint(panns.SPEC.weights, state, str(cache / panns.SPEC.weights.filename))
    return str(cache), state


@pytest.fixture()
def unpinned(monkeypatch):
    """The PANNs spec without the release's pinned hash, size and md5: its file is checked against its sidecar."""
    spec = panns.SPEC
    monkeypatch.setattr(panns, "SPEC", dataclasses.replace(
        spec, weights=dataclasses.replace(spec.weights, sha256=None, size=None, md5=None)))


@pytest.fixture(scope="module")
def image_table(tmp_path_factory):
    """24 clips of 1.5 s, two classes, with their 64-band log-mel images."""
    root = tmp_path_factory.mktemp("cnn14")
    return write_features(synthetic_features(24, seed=5, logmel_s=1.5).table, str(root / "table"))


def _config(table: str, out: str, **changes) -> TrainConfig:
    return from_dict(TrainConfig, {"features": table, "output": out, **FAST, **changes})


def test_the_network_starts_from_the_checkpoints_bn0_and_blocks_not_its_head(checkpoint, unpinned, monkeypatch):
    """Spied at the start of the real training loop: every tensor of bn0 and of the two blocks (weights, biases,
    running statistics) is the checkpoint's, block i from conv_block i; the head is the fresh one of the seed."""
    cache, state = checkpoint
    from acoustic_env.learn.warm_start import panns_init

    init = panns_init(cache)
    assert init == {"from": "panns", "weights": f"{cache}/{panns.SPEC.weights.filename}",
                    "sha256": weights.read_sidecar(init["weights"])["sha256"]}
    seen, real = [], spectro_estimator.fit
    monkeypatch.setattr(spectro_estimator, "fit", lambda model, *a, **k: (
        seen.append({n: t.detach().clone() for n, t in model.state_dict().items()}), real(model, *a, **k))[1])
    rng = np.random.default_rng(0)
    member = np.eye(2)[np.arange(12) % 2]
    x, y = stack_images(synthetic_images(member, np.arange(12) // 2, 1.0, rng), 98), member.argmax(axis=1)

    def fitted(network):
        return make_estimator("cnn", "single_label", 2, max_rounds=1, network=network).fit(x, y, np.arange(12) // 2)

    fitted({**NETWORK, "init": init})
    fitted(NETWORK)  # the same seed without the checkpoint: the head it starts from
    warm, cold = seen
    pairs = [("bn0.", "bn0.")] + [(f"blocks.{i}.", f"conv_block{i}.") for i in (1, 2)]
    copied = [n for n in warm if n.startswith(tuple(p for p, _ in pairs))]
    assert len(copied) == 5 + 2 * (2 + 2 * 5)  # bn0, and each block's two convolutions and two batch norms
    for name in copied:
        ours, theirs = next((o, t) for o, t in pairs if name.startswith(o))
        torch.testing.assert_close(warm[name], state[theirs + name[len(ours):]], rtol=0, atol=0, msg=name)
        assert not torch.equal(cold[name], warm[name]) or name.endswith("num_batches_tracked")
    for name in ("head.1.weight", "head.1.bias"):
        torch.testing.assert_close(warm[name], cold[name], rtol=0, atol=0)


def test_warm_started_blocks_compute_what_cnn14_computes_on_the_same_log_mel(checkpoint, unpinned):
    """In evaluation mode the copied layers are CNN14's: on a log-mel image, our bn0 and two blocks give the feature
    map that CNN14's bn0 and conv_block1..2 give on it in PANNs' (frames, bands) layout; a transposed layout, bn0
    over another axis or the global standardisation in front would not."""
    from acoustic_env.learn.spectro import SpectroCNN
    from acoustic_env.learn.warm_start import panns_init, warm_start

    cache, state = checkpoint
    reference = Cnn14()
    reference.load_state_dict(state, strict=False)
    net = SpectroCNN(64, 1, [64, 128], 0.1, [1, 1], architecture="cnn14")
    net.mean.fill_(-40.0), net.std.fill_(12.0)  # as the estimator sets them: cnn14 leaves them unused
    warm_start(net, panns_init(cache))
    reference.eval(), net.eval()
    x = torch.randn(2, 64, 90) * 10 - 50  # (clips, bands, frames) in dB
    ours = []
    net.blocks.register_forward_hook(lambda _m, _i, out: ours.append(out))
    net.logits(x)
    z = reference.bn0(x.transpose(1, 2)[:, None].transpose(1, 3)).transpose(1, 3)  # PANNs' own code
    z = reference.conv_block2(reference.conv_block1(z, pool=2), pool=2)
    torch.testing.assert_close(ours[0], z)


def test_a_file_that_is_not_the_release_is_refused_in_one_line_naming_the_weights(checkpoint, image_table, tmp_path):
    """Against the registry's pin, the seeded file in the cache is not the release: stopped before any work."""
    cache, _ = checkpoint
    with pytest.raises(WeightsError) as err:
        train(_config(image_table, str(tmp_path / "out"), cnn_init="panns", weights_cache=cache))
    message = str(err.value)
    assert "\n" not in message and "'panns'" in message and panns.SPEC.weights.filename in message
    assert panns.SPEC.weights.sha256 in message and not (tmp_path / "out").exists()


def test_a_checkpoint_changed_after_the_check_stops_the_fit(checkpoint, unpinned, tmp_path):
    """Each fit reloads the file against the SHA-256 the job found: a file changed since is a checksum mismatch."""
    from acoustic_env.learn.warm_start import panns_init, warm_start
    from acoustic_env.learn.spectro import SpectroCNN

    cache, _ = checkpoint
    init = {**panns_init(cache), "sha256": "0" * 64}
    net = SpectroCNN(64, 1, [64, 128], 0.1, [1, 1], architecture="cnn14")
    with pytest.raises(WeightsError, match=r"Checksum mismatch for 'panns' weights .* expected sha256 0{64}"):
        warm_start(net, init)


@pytest.mark.parametrize("dropped,named", [
    (("bn0.",), "bn0"),
    (("conv_block2.",), "conv_block2"),
    (("conv_block1.bn2.running_var", "conv_block1.bn2.running_mean", "conv_block2.conv1.weight"),
     "conv_block1.bn2.running_mean, conv_block1.bn2.running_var; conv_block2.conv1.weight"),
])
def test_a_checkpoint_that_lacks_a_tensor_stops_before_anything_is_copied(checkpoint, unpinned, tmp_path, dropped,
                                                                          named):
    """A checkpoint without bn0, without a block, or without single tensors of them is refused in one line naming
    what it lacks, in the file's own names (a whole layer by its name), and leaves the network as it was: no network
    trains with part of CNN14 and the rest random."""
    from acoustic_env.learn.spectro import SpectroCNN
    from acoustic_env.learn.warm_start import panns_init, warm_start

    _, state = checkpoint
    cache = tmp_path / "weights"
    weights.save_checkpoint(panns.SPEC.weights, {k: v for k, v in state.items() if not k.startswith(dropped)},
                            str(cache / panns.SPEC.weights.filename))
    init = panns_init(str(cache))
    net = SpectroCNN(64, 1, [64, 128], 0.1, [1, 1], architecture="cnn14")
    before = {n: t.clone() for n, t in net.state_dict().items()}
    with pytest.raises(WeightsError) as err:
        warm_start(net, init)
    assert str(err.value) == (f"{init['weights']} (sha256 {init['sha256']}) does not fit the cnn14 network: it lacks "
                              f"{named} (CNN14's bn0 and conv_block1..2 are copied whole); nothing was loaded")
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_the_run_record_says_which_checkpoint_the_cnn_started_from():
    from acoustic_env.learn.warm_start import described

    assert described({"from": "panns", "weights": "w.pth", "sha256": "0123456789abcdef" * 4}) == (
        "The CNN (cnn14) started from the PANNs CNN14 checkpoint (sha256 0123456789ab): its bn0 and blocks copied, "
        "its head random.")


def test_a_checkpoint_tensor_of_another_shape_is_one_line_naming_it(checkpoint, unpinned, tmp_path):
    from acoustic_env.learn.spectro import SpectroCNN
    from acoustic_env.learn.warm_start import panns_init, warm_start

    _, state = checkpoint
    cache = tmp_path / "weights"
    weights.save_checkpoint(panns.SPEC.weights, {**state, "conv_block1.conv1.weight": torch.zeros(64, 1, 5, 5)},
                            str(cache / panns.SPEC.weights.filename))
    net = SpectroCNN(64, 1, [64, 128], 0.1, [1, 1], architecture="cnn14")
    with pytest.raises(WeightsError, match=r"does not fit the cnn14 network: .*blocks\.1\.conv1\.weight.*"
                                           r"torch\.Size\(\[64, 1, 5, 5\]\)") as err:
        warm_start(net, panns_init(str(cache)))
    assert "\n" not in str(err.value)


def test_the_one_line_errors(checkpoint, image_table, tmp_path):
    cache, _ = checkpoint
    with pytest.raises(ConfigError, match="cnn_init: panns copies PANNs CNN14's blocks: needs --cnn-architecture "
                                          "cnn14"):
        _config(image_table, str(tmp_path / "a"), cnn_init="panns", cnn_architecture="small")
    with pytest.raises(ConfigError, match=r"cnn_init: panns starts the CNN from the PANNs CNN14 checkpoint, which is "
                                          r"not at .*empty.*models fetch panns"):
        train(_config(image_table, str(tmp_path / "b"), cnn_init="panns", weights_cache=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=NARROW):
        train(_config(_narrow(tmp_path), str(tmp_path / "c")))


#: images of 32 bands (an MFCC or a narrower log-mel): cnn14 takes PANNs' 64
NARROW = r"^cnn_architecture: the cnn14 architecture takes 64-band log-mel images \(PANNs' front end\); these images have 32 bands"


def _narrow(tmp_path) -> str:
    """24 clips whose log-mel images have 32 bands."""
    table = synthetic_features(24, seed=5, logmel_s=1.5).table
    narrow = encode_images([np.zeros((32, 150), np.float32) + i for i in range(24)])
    return write_features(table.set_column(table.schema.get_field_index("logmel"), "logmel", narrow),
                          str(tmp_path / "narrow"))


@pytest.mark.slow
def test_images_cnn14_cannot_take_are_one_line_under_the_split_too(ray_session, tmp_path):
    """Above cv_max_clips the CNN's images are streamed by Ray Data and never read whole in the job's process: their
    survey's bands are checked there, so the same one line comes back, not a failed trial's traceback."""
    with pytest.raises(ConfigError, match=NARROW):
        train(_config(_narrow(tmp_path), str(tmp_path / "out"), cv_folds=0, trials=0, max_rounds=1, grace_rounds=1))


def test_cnn14_is_never_searched():
    """Too heavy on a CPU to be drawn: only --cnn-architecture cnn14 picks it (the searched space is pinned in
    tests/test_cnn_train.py)."""
    from acoustic_env.candidates import SPACES

    assert "cnn14" not in SPACES["cnn"].ranges["architecture"].choices


@pytest.mark.slow
def test_train_warm_started_end_to_end_saves_a_model_that_scores_as_in_training(checkpoint, unpinned, image_table,
                                                                                tmp_path, monkeypatch):
    cache, _ = checkpoint
    fitted, checked = {}, refitted.checked_portable
    monkeypatch.setattr(refitted, "checked_portable",
                        lambda estimator, x: fitted.setdefault("proba", estimator.predict_proba(x)) is not None
                        and checked(estimator, x))
    summary = train(_config(image_table, str(tmp_path / "out"), cnn_init="panns", weights_cache=cache))
    sha = weights.read_sidecar(f"{cache}/{panns.SPEC.weights.filename}")["sha256"]
    assert f"started from the PANNs CNN14 checkpoint (sha256 {sha[:12]})" in summary.search["method"]
    assert f"sha256 {sha[:12]}" in "\n".join(summary_lines(summary))
    model = ae.load_model(summary.model)
    network = model.meta["estimator"]["params"]["network"]
    assert network["architecture"] == "cnn14" and network["init"]["sha256"] == sha
    assert model.meta["estimator"]["architecture"]["channels"] == [64, 128]
    np.testing.assert_allclose(model.predict_proba(image_table), fitted["proba"], atol=1e-5)
    assert summary.metrics["cnn"]["n"] == 24


@pytest.mark.parametrize("architecture, got", [("small", "got --cnn-architecture 'small'"),
                                                (None, "got --cnn-architecture unset (tuned)")])
def test_the_warm_starts_error_quotes_the_architecture_given(architecture, got):
    """Issue 82, 18: the line said "needs --cnn-architecture cnn14, got 'panns'", quoting --cnn-init's value where
    the architecture is what must change."""
    with pytest.raises(ConfigError) as caught:
        from_dict(TrainConfig, {"features": "t", "output": "o", "baselines": ["cnn"], "cnn_init": "panns",
                                "cnn_architecture": architecture})
    assert str(caught.value) == f"cnn_init: panns copies PANNs CNN14's blocks: needs --cnn-architecture cnn14, {got}"
