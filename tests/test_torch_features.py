"""The torch feature stages against the numpy fast paths they mirror, clip batch by clip batch.

Each torch stage gets the same clips as the fast path, batched (several clips as one
tensor, and a batch of mixed lengths), and must agree within the tolerances the fast
paths themselves are held to against the libraries (tests/test_fast_features.py):

* separation: fg to 1e-6 of its RMS (float64 like noisereduce), bg = clip - fg exactly;
* indices: all 60 to 1e-6 relative (1e-9 absolute), NaN where the fast path has NaN;
* spectral statistics: 1e-6 dB;
* MPS grid: 1e-4 in log10 power (single precision FFTs, like the fast path);
* the whole batch stage (``batch_features``) against ``cpu_features``: raw to 1e-6 relative,
  fg and bg to the issue's 1e-3, non-finite counts equal.

Every test runs on CPU, and on CUDA where torch sees a device (skipped with the reason here).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from conftest import mixed_clips, tone_clip
from test_fast_features import _rms

from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audio.rows import CPU_PREFIX, row_schema
from acoustic_env.audio.stages import cpu_vector_columns, decode_batch, features_batch, stages, vector_columns
from acoustic_env.config import ConfigError, ExtractConfig, FeatureParams, from_dict
from acoustic_env.distributed.pipeline import plan_extract_resources
from acoustic_env.features import cpu_features
from acoustic_env.features.fast import indices as fast_indices
from acoustic_env.features.fast import mps as fast_mps
from acoustic_env.features.fast import separation as fast_separation
from acoustic_env.features.fast import spectral as fast_spectral
from acoustic_env.features.reference.indices import INDEX_NAMES
from acoustic_env.features.torch import buckets
from acoustic_env.features.torch import indices as torch_indices
from acoustic_env.features.torch import mps as torch_mps
from acoustic_env.features.torch import separation as torch_separation
from acoustic_env.features.torch import spectral as torch_spectral
from acoustic_env.features.torch.batch import batch_features

SR = 16000
PARAMS = FeatureParams()
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, NO_CUDA])]


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """1.5-s clips reaching the edge cases: tones (the gate closes), noise, a chirp, a gap of zeros, silence."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    gap = rng.standard_normal(t.size)
    gap[SR // 2 : SR] = 0.0
    return {
        "tones": _rms(np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
                      + 0.3 * np.sin(2 * np.pi * 3000 * t)),
        "noise": _rms(rng.standard_normal(t.size)),
        "chirp": _rms(np.sin(2 * np.pi * (200 * t + 1400 * t**2)) + 0.01 * rng.standard_normal(t.size)),
        "gap": _rms(gap),
        "near_silence": (1e-7 * rng.standard_normal(t.size)).astype(np.float32),
        "silence": np.zeros(t.size, dtype=np.float32),
    }


def _batch(clips: dict[str, np.ndarray], device: str) -> torch.Tensor:
    return torch.from_numpy(np.stack(list(clips.values()))).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_separation_matches_the_fast_path(clips, device):
    fg, bg = torch_separation.separate(_batch(clips, device), SR, PARAMS)
    assert fg.dtype == bg.dtype == torch.float32 and fg.device.type == device
    for i, (name, x) in enumerate(clips.items()):
        ffg, _ = fast_separation.separate(x, SR, PARAMS)
        tfg = fg[i].cpu().numpy()
        np.testing.assert_array_equal(bg[i].cpu().numpy(), x - tfg, err_msg=name)
        rms = float(np.sqrt(np.mean(ffg.astype(np.float64) ** 2)))
        np.testing.assert_allclose(tfg, ffg, rtol=0, atol=1e-6 * rms, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_indices_and_spectral_statistics_match_the_fast_path(clips, device):
    """All 60 indices one by one, and the spectral statistics from the same spectrogram."""
    batch = _batch(clips, device)
    indices, sxx = torch_indices.indices_and_psd(batch, SR, PARAMS)
    spectral = torch_spectral.spectral_stats(batch, sxx, SR, PARAMS).cpu().numpy()
    indices = indices.cpu().numpy()
    assert indices.shape == (len(clips), len(INDEX_NAMES))
    for i, (name, x) in enumerate(clips.items()):
        fast, fast_sxx = fast_indices.indices_and_psd(x, SR, PARAMS)
        for j, index in enumerate(INDEX_NAMES):
            np.testing.assert_allclose(indices[i, j], fast[j], rtol=1e-6, atol=1e-9, equal_nan=True,
                                       err_msg=f"{index} of {name}")
        np.testing.assert_allclose(spectral[i], fast_spectral.spectral_stats(x, fast_sxx, SR, PARAMS), rtol=0, atol=1e-6,
                                   err_msg=name)


def _spiral(n: int) -> np.ndarray:
    """One active path winding inwards from the corner of an n×n image, a pixel between its turns: the longest
    way round for a label to travel."""
    image = np.zeros((n, n), dtype=bool)
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    r = c = d = 0
    image[0, 0] = True
    while True:
        for _ in range(2):  # straight on, else turn right once
            dr, dc = steps[d]
            nr, nc, ar, ac = r + dr, c + dc, r + 2 * dr, c + 2 * dc
            if (0 <= nr < n and 0 <= nc < n and not image[nr, nc]
                    and not (0 <= ar < n and 0 <= ac < n and image[ar, ac])):
                r, c = nr, nc
                image[r, c] = True
                break
            d = (d + 1) % 4
        else:
            return image


def _regions(labels: np.ndarray) -> np.ndarray:
    """Each pixel's region named by its first pixel: equal for two labellings of the same regions."""
    flat = labels.reshape(labels.shape[0], -1)
    out = np.zeros(flat.shape, dtype=np.int64)
    for i, row in enumerate(flat):
        values, first, inverse = np.unique(row, return_index=True, return_inverse=True)
        out[i] = np.where(row > 0, first[inverse] + 1, 0)
    return out.reshape(labels.shape)


@pytest.mark.parametrize("device", DEVICES)
def test_the_roi_labelling_finds_scipys_regions(device):
    """The device's labelling (``_label_hooks``) and the dispatching ``_label`` give scipy's 8-connected regions, on
    masks near the percolation threshold, a spiral (one long path), diagonal chains (connected only at corners),
    a lone first pixel, empty and full images, and a 46,341-pixel line of thousands of runs."""
    rng = np.random.default_rng(1)
    staircase = np.eye(40, 60, dtype=bool) | np.eye(40, 60, 20, dtype=bool)[:, ::-1]
    corners = np.zeros((1, 8, 9), bool)
    corners[0, 0, 0] = corners[0, 5:, 5:] = True  # a lone first pixel, which an inactive pixel's label (0) names
    masks = [rng.random((3, 64, 97)) < p for p in (0.1, 0.45, 0.6)]
    masks += [_spiral(61)[None], staircase[None], corners, np.zeros((2, 8, 9), bool), np.ones((2, 8, 9), bool),
              rng.random((1, 1, 46_341)) < 0.5]
    for m, mask in enumerate(masks):
        expected = np.stack([ndimage.label(image, structure=np.ones((3, 3)))[0] for image in mask])
        active = torch.from_numpy(mask).to(device)
        for label in (torch_indices._label_hooks, torch_indices._label):
            got = label(active)
            assert got.dtype == torch.int64 and got.shape == mask.shape, (m, label.__name__)
            np.testing.assert_array_equal(_regions(got.cpu().numpy()), _regions(expected), err_msg=f"{m} {label.__name__}")
    assert _regions(expected).max() > 0 and len(np.unique(_regions(expected))) > 1000  # the line has many regions


@pytest.mark.parametrize("device", DEVICES)
def test_mps_grid_matches_the_fast_path(clips, device):
    grids = torch_mps.mps_grid(_batch(clips, device), SR, PARAMS).cpu().numpy()
    for i, (name, x) in enumerate(clips.items()):
        fast = fast_mps.mps_grid(x, SR, PARAMS)
        assert grids[i].shape == fast.shape, name
        if not np.any(fast):
            assert not np.any(grids[i]), name
            continue
        np.testing.assert_allclose(grids[i], fast, rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_features_equal_cpu_features_on_mixed_lengths(clips, device):
    """The whole stage on a batch of two lengths (two groups), in the batch's order, with the same columns."""
    batch = [clips["chirp"][:SR], clips["gap"][: 3 * SR // 4], clips["silence"][:SR], clips["tones"][: 3 * SR // 4]]
    assert {n: list(rows) for n, rows in buckets(batch).items()} == {3 * SR // 4: [1, 3], SR: [0, 2]}
    out, seconds = batch_features(batch, SR, PARAMS, device)
    assert set(seconds) == {"separate", "indices", "spectral", "mps"} and all(s > 0 for s in seconds.values())
    for i, x in enumerate(batch):
        ref, _ = cpu_features(x, SR, PARAMS)
        assert set(out) == set(ref)
        assert out["nonfinite_features"][i] == ref["nonfinite_features"], i
        for col, vec in ref.items():
            if col == "nonfinite_features":
                continue
            assert out[col].dtype == np.float32 and out[col].shape == (len(batch), vec.size), col
            tol = 1e-4 if col.startswith("mps") else 1e-6 if col.endswith("raw") else 1e-3
            np.testing.assert_allclose(out[col][i], vec, rtol=tol, atol=1e-6, err_msg=f"{col} of clip {i}")


@pytest.mark.parametrize("device", DEVICES)
def test_the_extract_feature_stage_takes_the_torch_path_on_a_device(tmp_path, device):
    """``features_batch(device=...)``, as the extract's actors call it on a GPU node: the numpy path's
    columns within the tolerances above, error rows passed through, device seconds per stage per clip."""
    clips = mixed_clips(tmp_path / "clips")
    cfg = from_dict(ExtractConfig, {"manifest": str(clips), "output": str(tmp_path / "out"), "progress": False,
                                    "embedders": []})
    table = read_manifest(cfg.manifest, cfg.audio_root).table
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg))
    decoded = decode_batch(table, cfg, schema)
    numpy_done = features_batch(decoded, cfg, schema)
    torch_done = features_batch(decoded, cfg, schema, device=device)
    assert torch_done.schema == numpy_done.schema
    assert torch_done["error_type"].to_pylist() == numpy_done["error_type"].to_pylist() == [None, None, None, "not_audio"]
    for col in cpu_vector_columns(cfg):
        for i in range(3):
            tol = 1e-4 if col.startswith("mps") else 1e-6 if col.endswith("raw") else 1e-3
            # cuFFT's float32 rounding moves an MPS value by ~1e-6 absolute (1.4e-6 at 0.0014 on an H100, 2026-11-26)
            atol = 1e-5 if col.startswith("mps") else 1e-6
            np.testing.assert_allclose(torch_done[col][i].values.to_numpy(), numpy_done[col][i].values.to_numpy(),
                                       rtol=tol, atol=atol, err_msg=f"{col} of clip {i}")
        assert torch_done[col][3].as_py() is None
    assert torch_done["nonfinite_features"].to_pylist() == numpy_done["nonfinite_features"].to_pylist()
    for stage in ("separate", "indices", "spectral", "mps"):
        seconds = torch_done[f"{CPU_PREFIX}{stage}"].to_numpy()
        assert (seconds[:3] > 0).all() and seconds[3] == 0, stage


@pytest.mark.slow
def test_the_benchmark_prints_both_paths(capsys, monkeypatch):
    """benchmarks/gpu_features.py on CPU, tiny: both rates, the stage seconds and the differences."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_features.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as when run as a script: benchmarks/machine.py
    spec = importlib.util.spec_from_file_location("bench_gpu_features", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # the pool's workers find its functions by module name
    spec.loader.exec_module(module)
    assert module.main(["--device", "cpu", "--clips", "2", "--seconds", "1", "--batch-size", "2", "--pool", "1",
                        "--compare", "1"]) == 0
    out = capsys.readouterr().out
    assert "| numpy `cpu_features`, pool of 1 processes |" in out and "| torch `batch_features` on cpu" in out
    assert "Device seconds per stage" in out and "Largest difference torch − numpy" in out and "mps_raw" in out


def test_the_labelling_benchmark_compares_the_card_with_scipy(capsys, monkeypatch):
    """benchmarks/roi_labels.py on CPU, one batch of two 10-s clips: the card's labelling finds scipy's regions in a
    few rounds, and its check of that tells different labellings apart."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "roi_labels.py"
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location("bench_roi_labels", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--device", "cpu", "--batches", "2"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "True" and 0 < int(cells[1].split("(")[1].split()[0]) < 20, row
    a = torch.tensor([[[1, 1, 0, 2]], [[1, 0, 2, 2]]])
    assert module.same_regions(a, a * 7) and not module.same_regions(a, torch.tensor([[[1, 1, 0, 1]], [[1, 0, 2, 2]]]))
    assert not module.same_regions(a, torch.tensor([[[1, 2, 0, 2]], [[1, 0, 2, 2]]]))


def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    """``acoustic-env extract --device cuda`` on a machine with no GPU and no cluster named: exit 2 and one line
    naming the flag, before any Ray starts; on a cluster without a GPU, the plan's own check names it."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    clips = tmp_path / "clips"
    clips.mkdir()
    tone_clip(clips / "a.wav")
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", str(clips), "--output",
                          str(tmp_path / "out"), "--device", "cuda", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert ("acoustic-env: error: device: --device cuda, but this machine has no CUDA GPU and no cluster is named "
            "(use --device auto or cpu)") in out.stderr.splitlines()
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"^device: --device cuda, but the Ray cluster has no 'GPU' resource "
                                          r"\(use --device auto or cpu\)$"):
        plan_extract_resources({"CPU": 16.0, "accel": 1.0}, n_embedders=1, device="cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_batch_features_embed_raw_fg_and_bg_in_the_same_pass(clips, device, tmp_path):
    """With an embedder (YAMNet, seeded random weights), the pass adds its columns for raw, fg and bg:
    the embedder's own output on those signals, and within cosine 0.999 of it on the fast path's fg/bg."""
    from acoustic_env.embedders.factory import load_embedder

    yamnet = load_embedder("yamnet", device=device, allow_random_weights=True, cache_dir=str(tmp_path))
    batch = [clips["chirp"][:SR], clips["noise"][:SR]]
    out, seconds = batch_features(batch, SR, PARAMS, device, embedders={"yamnet": yamnet})
    assert seconds["embed_yamnet"] > 0
    fg, bg = torch_separation.separate(torch.from_numpy(np.stack(batch)).to(device), SR, PARAMS)
    for name, signal in (("raw", np.stack(batch)), ("fg", fg.cpu().numpy()), ("bg", bg.cpu().numpy())):
        for col, expected in yamnet.embed(signal).items():
            key = col if name == "raw" else f"{col}_{name}"
            np.testing.assert_array_equal(out[key], expected, err_msg=key)
    fast = [fast_separation.separate(x, SR, PARAMS) for x in batch]
    for j, name in ((0, "fg"), (1, "bg")):
        ref = yamnet.embed(np.stack([f[j] for f in fast]))["yamnet"]
        got = out[f"yamnet_{name}"]
        cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        assert (cos >= 0.999).all(), (name, cos)


def test_stationary_gating_is_the_fast_paths():
    """noisereduce's stationary gating is delegated (as the fast path delegates it to noisereduce)."""
    params = FeatureParams(nr_stationary=True)
    x = np.stack([_rms(np.random.default_rng(3).standard_normal(SR)), _rms(np.sin(np.arange(SR) / 5.0))])
    fg, bg = torch_separation.separate(torch.from_numpy(x), SR, params)
    for i in range(2):
        ffg, fbg = fast_separation.separate(x[i], SR, params)
        np.testing.assert_array_equal(fg[i].numpy(), ffg)
        np.testing.assert_array_equal(bg[i].numpy(), fbg)
