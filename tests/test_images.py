"""Configurable images and named CNN architectures (issue 63, part 3).

* an MFCC image is librosa's ``feature.mfcc`` of the log-mel, on a real clip (``../shared``) and on its torch twin;
* an extract with ``--features-image mfcc`` writes [coefficients, frames] images, their kind in the column's
  metadata; image settings without the image, or more coefficients than bands, are one line;
* the CNN's architectures: the residual one is ResNet's basic block, and either scores an MFCC image's few rows;
* train ``--baselines cnn --cnn-architecture residual --cnn-crop-s`` on real WAVs extracted as MFCC images fits,
  records the image (kind, bands, coefficients), the architecture and the crop with the model, predicts from audio
  as from its table, and refuses a log-mel table in one line; the candidate's defaults and space come back after.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from test_cnn_train import TINY
from test_cnn_score import PROBS, two_kinds
from test_windows import SR

import acoustic_env as ae
from acoustic_env.audio.decode import decode_clip
from acoustic_env.candidates import PARAMS, SPACES, cnn
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams, TrainConfig, from_dict
from acoustic_env.features.logmel import COLUMN, LOGMEL, compute_image, image_settings
from acoustic_env.features.torch import logmel as torch_logmel
from acoustic_env.jobs.predict import predict
from acoustic_env.jobs.train.job import train
from acoustic_env.learn.spectro import ResidualBlock, SpectroCNN, architecture
from acoustic_env.table import decode_images, read_metadata

MFCC = image_settings(FeatureParams(image="mfcc", image_bands=64, image_mfcc=20))
DEMO_AUDIO = Path(__file__).parent / "data" / "reference_demo" / "audio"
CLIPS, CLIP_S = 16, 1.0


def librosa_mfcc(x: np.ndarray, n_mfcc: int = 20, n_mels: int = 64) -> np.ndarray:
    """librosa's MFCCs of ``x`` from its own log-mel on ``LOGMEL``'s frames (tests/test_logmel.py's padding puts
    librosa's centred 400-sample window where ours starts)."""
    pad = (LOGMEL.n_fft - LOGMEL.win_length) // 2
    power = librosa.feature.melspectrogram(
        y=np.pad(x, (pad, pad)), sr=SR, n_fft=LOGMEL.n_fft, hop_length=LOGMEL.hop_length,
        win_length=LOGMEL.win_length, center=False, n_mels=n_mels, fmin=LOGMEL.fmin, fmax=LOGMEL.fmax)
    return librosa.feature.mfcc(S=librosa.power_to_db(power, ref=1.0, amin=LOGMEL.amin, top_db=LOGMEL.top_db),
                                n_mfcc=n_mfcc)


@pytest.mark.parametrize("n_mfcc, n_mels", [(20, 64), (13, 40)])
def test_the_mfcc_image_is_librosas_on_a_real_clip(shared_data, n_mfcc, n_mels):
    x = decode_clip(str(shared_data / "audioset" / "R9_ZSCveAHg_7s.wav"), DecodeParams()).audio
    settings = image_settings(FeatureParams(image="mfcc", image_bands=n_mels, image_mfcc=n_mfcc))
    image, reference = compute_image(x, settings), librosa_mfcc(x, n_mfcc, n_mels)
    assert image.shape == reference.shape == (n_mfcc, 1 + (x.size - 400) // 160) and image.dtype == np.float32
    assert np.abs(reference).max() > 100  # the first coefficient: the frame's level, hundreds of dB·sqrt(bands)
    np.testing.assert_allclose(image, reference, rtol=0, atol=2e-3)
    on_device = torch_logmel.image(torch.as_tensor(x[None]), settings)[0].numpy()
    np.testing.assert_allclose(on_device, image, rtol=0, atol=2e-3)


def test_an_extract_with_mfcc_images_writes_coefficients_by_frames_and_says_so(tmp_path):
    files = sorted(DEMO_AUDIO.glob("*.flac"))[:2]
    (tmp_path / "clips.csv").write_text("clip_id,uri,labels\n" + "".join(f"{f.stem},{f},\n" for f in files))
    ae.extract(str(tmp_path / "clips.csv"), str(tmp_path / "out"), progress=False,
               features={"logmel": True, "image": "mfcc", "signals": ["raw"], "spectral": False})
    table = pq.read_table(tmp_path / "out" / "features")
    meta = read_metadata(pq.read_schema(next((tmp_path / "out" / "features").glob("*.parquet"))))["columns"][COLUMN]
    assert (meta["image"], meta["bands"], meta["mfcc"], meta["shape"]) == ("mfcc", 64, 20, [20, "frames"])
    assert meta == MFCC.metadata()
    for clip_id, image, row in zip(table["clip_id"].to_pylist(), decode_images(table[COLUMN]),
                                   table[COLUMN].to_pylist()):
        reference = librosa_mfcc(decode_clip(str(DEMO_AUDIO / f"{clip_id}.flac"), DecodeParams()).audio)
        assert image.shape == reference.shape and image.shape[0] == 20
        assert np.abs(image - reference).max() <= row["step"] / 2 + 2e-3, clip_id


@pytest.mark.parametrize("flags, message", [
    (["--features-image", "mfcc"], "features.image: sets the logmel column's image: add --features-logmel"),
    (["--features-logmel", "--features-image", "mfcc", "--features-image-bands", "16", "--features-image-mfcc",
      "20"], "features.image_mfcc: must be <= image_bands"),
    (["--features-logmel", "--features-image", "cqt"], "features.image: must be one of ['logmel', 'mfcc'], got 'cqt'"),
])
def test_image_settings_that_cannot_be_met_are_one_line(tmp_path, capsys, flags, message):
    assert main(["extract", "--manifest", str(tmp_path / "clips.csv"), "--output", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("name", ["small", "residual"])
def test_either_architecture_scores_an_mfcc_images_few_rows(name):
    """20 rows pooled 2 x 2 by the input and then by each block reach one row after three blocks: the fourth
    pools over time only, where a 2 x 2 pool would leave no row at all."""
    args = architecture(20, "single_label", 3, {**PARAMS["cnn"]["network"], "architecture": name})
    net = SpectroCNN(**{k: v for k, v in args.items() if k != "network"}).eval()
    assert cnn.FRAMES_PER_S == LOGMEL.sample_rate / LOGMEL.hop_length  # --cnn-crop-s in the image's frames
    assert net(torch.randn(2, 20, 300)).shape == (2, 3)
    residual = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(residual) == (4 if name == "residual" else 0)
    if residual:  # the input added back: a block whose body gives 0 passes the input on (ReLU, pooled)
        block = residual[1]
        torch.nn.init.zeros_(block.body[-1].weight)
        torch.nn.init.zeros_(block.body[-1].bias)
        x = torch.randn(1, block.body[0].in_channels, 4, 4)
        block.eval()
        np.testing.assert_allclose(block(x).detach(), block.out(block.skip(x)).detach(), atol=1e-6)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Real WAVs of two kinds extracted with MFCC images, and a log-mel extract of four of them."""
    root = tmp_path_factory.mktemp("images")
    lines = two_kinds(root, CLIPS, CLIP_S)
    (root / "four.csv").write_text("\n".join(lines[:5]) + "\n")
    for name, manifest, image in (("mfcc", "clips.csv", "mfcc"), ("logmel", "four.csv", "logmel")):
        ae.extract(str(root / manifest), str(root / name), progress=False,
                   features={"signals": ["raw"], "spectral": False, "logmel": True, "image": image})
    return {"root": root, "clips": sorted((root / "audio").glob("*.wav"))}


@pytest.mark.slow
def test_a_residual_cnn_on_mfcc_images_is_recorded_predicts_and_refuses_a_log_mel_table(world, monkeypatch):
    monkeypatch.setitem(PARAMS, "cnn", TINY)
    before = (PARAMS["cnn"], SPACES["cnn"])
    root = world["root"]
    summary = train(from_dict(TrainConfig, {
        "features": str(root / "mfcc"), "output": str(root / "train"), "task": "labels:urban,natural",
        "cv_folds": 2, "tuning_trials": 1, "max_rounds": 3, "baselines": ["cnn"], "saved_model": "cnn",
        "cnn_architecture": "residual", "cnn_crop_s": 0.5, "ablations": False, "shap_samples": 0,
        "feature_groups": ["indices_raw"], "progress": False}))
    assert (PARAMS["cnn"], SPACES["cnn"]) == before  # the job's fixed settings end with it
    spec = json.loads((Path(summary.model) / "model.json").read_text())["estimator"]
    assert spec["input"]["features"] == {"image": "mfcc", "image_bands": 64, "image_mfcc": 20}
    assert spec["input"]["bands"] == 20
    assert spec["architecture"]["architecture"] == "residual" and spec["architecture"]["crop_frames"] == 50
    assert spec["params"]["network"]["architecture"] == "residual"
    model = ae.load_model(summary.model)
    assert model.extraction_params()[1].image == "mfcc"
    described = json.loads((Path(summary.model) / "model.json").read_text())
    described["extraction"]["features"] = {"logmel": False}  # a table record that says nothing of the image
    (root / "moved").mkdir()
    for part in Path(summary.model).iterdir():
        (root / "moved" / part.name).write_bytes(part.read_bytes())
    (root / "moved" / "model.json").write_text(json.dumps(described))
    scoring = ae.load_model(str(root / "moved")).extraction_params()[1]  # the model's own record decides
    assert (scoring.logmel, scoring.image, scoring.image_bands, scoring.image_mfcc) == (True, "mfcc", 64, 20)
    on_table = {r["clip_id"]: r for r in model.predict_table(str(root / "mfcc")).to_pylist()}
    from_audio = predict([str(c) for c in world["clips"][:4]], summary.model).to_pylist()
    for r in from_audio:  # the clip's MFCC image computed from its audio, as the table holds it
        np.testing.assert_allclose([r[p] for p in PROBS], [on_table[r["clip_id"]][p] for p in PROBS], atol=1e-5)
    with pytest.raises(ConfigError) as info:
        model.predict_table(str(root / "logmel"))
    message = str(info.value)
    assert "\n" not in message and re.search(r"images of .*logmel are image=logmel, image_bands=64; the model "
                                             r"learnt from image=mfcc, image_bands=64, image_mfcc=20", message)
