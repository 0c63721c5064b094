"""The MPS grid is a setting (``features.mps_n_wf`` × ``mps_n_wt``): the study's 101 × 77 beside the default 16 × 33.

At the study's grid the three implementations still agree, the column's width and axes follow the grid, and a
model trained on one grid refuses a table of another with one line that says how to extract the model's (the
width alone misses a transposed grid, or the same shape on other axes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from acoustic_env.audio.stages import vector_columns
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, ExtractConfig, FeatureParams, from_dict
from acoustic_env.config.extraction import MPS_MAX_POINTS
from acoustic_env.config.flags import describe
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.features import feature_metadata
from acoustic_env.features.fast import mps as fast_mps
from acoustic_env.features.reference import mps as reference_mps
from acoustic_env.features.torch import mps as torch_mps
from acoustic_env.jobs.train import load_model
from acoustic_env.learn.artifact import save_model
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import metadata_json, read_features, read_metadata
from acoustic_env.vocabulary.tasks import load_task

SR = 16000
STUDY = FeatureParams(mps_n_wf=101, mps_n_wt=77)


def test_the_studys_grid_in_all_three_implementations():
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    x = (0.1 * np.sin(2 * np.pi * (300 * t + 900 * t**2)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    fast = fast_mps.mps_grid(x, SR, STUDY)
    assert fast.shape == (101 * 77,)
    np.testing.assert_allclose(fast, reference_mps.mps_grid(x, SR, STUDY), rtol=0, atol=1e-4)
    on_torch = torch_mps.mps_grid(torch.from_numpy(x)[None], SR, STUDY)[0].numpy()
    np.testing.assert_allclose(on_torch, fast, rtol=0, atol=1e-4)
    # the same axes, sampled otherwise: both grids share their corners, interpolated from the same points
    default = fast_mps.mps_grid(x, SR, FeatureParams()).reshape(16, 33)
    study = fast.reshape(101, 77)
    np.testing.assert_allclose(study[[0, -1]][:, [0, -1]], default[[0, -1]][:, [0, -1]], atol=1e-6)


def test_the_column_and_its_metadata_follow_the_grid():
    cfg = from_dict(ExtractConfig, {"manifest": "m.csv", "output": "out", "embedders": [],
                                    "features": {"mps_n_wf": 101, "mps_n_wt": 77}})
    assert vector_columns(cfg)["mps_raw"] == 7777
    meta = feature_metadata(cfg.features)["mps_fg"]
    assert meta["shape"] == [101, 77]
    assert len(meta["axes"]["wf_cycles_per_hz"]) == 101 and len(meta["axes"]["wt_hz"]) == 77
    assert meta["axes"]["wt_hz"][38] == 0.0  # odd: wt = 0 is a grid point


def _with_grid(table: pa.Table, params: FeatureParams, seed: int) -> pa.Table:
    """``table`` with its mps_raw column and metadata as an extract with ``params`` writes them."""
    column = feature_metadata(params)["mps_raw"]
    width = int(np.prod(column["shape"]))
    values = np.random.default_rng(seed).standard_normal((table.num_rows, width)).astype(np.float32)
    i = table.schema.get_field_index("mps_raw")
    table = table.set_column(i, pa.field("mps_raw", pa.list_(pa.float32(), width)),
                             pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), width))
    meta = read_metadata(table.schema)
    meta["columns"]["mps_raw"] = column
    return table.replace_schema_metadata(metadata_json(meta))


def test_a_model_refuses_a_table_of_another_grid(tmp_path):
    task = load_task("urban_natural")
    base = synthetic_table(40, seed=2, signals=("raw",))
    own = write_features(base, str(tmp_path / "own"))
    features = read_features(own, task=task, feature_groups=["mps_raw"])
    transforms = [fit_group(features.X["mps_raw"], 4, "mps_raw")]
    fitted = make_estimator("logreg", task.kind, 2, 0).fit(transform_all(transforms, features.X), features.y)
    save_model(str(tmp_path / "model"), from_zoo(fitted), transforms,
               {"task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                         "definition": task.definition}}, features.feature_groups)
    model = load_model(str(tmp_path / "model"))
    assert model.meta["groups"][0]["grid"] == [16, 33]
    assert model.predict_proba(model.read_features(own)).shape == (40, 2)  # its own grid reads
    flags = "--features-mps-n-wf 16 --features-mps-n-wt 33 --features-mps-max-wf 0.005 --features-mps-max-wt 64"
    for name, params in (("study", STUDY), ("transposed", FeatureParams(mps_n_wf=33, mps_n_wt=16)),
                         ("other axes", FeatureParams(mps_max_wt=32.0))):
        other = write_features(_with_grid(base, params, 3), str(tmp_path / name.replace(" ", "_")))
        with pytest.raises(ConfigError) as info:
            model.read_features(other)
        message = str(info.value)
        assert message.startswith(f"features: column mps_raw of {other} is a {params.mps_n_wf}×{params.mps_n_wt} "
                                  f"(wf 0-0.005 cycles/Hz, wt ±{params.mps_max_wt:g} Hz) modulation grid; the model "
                                  "was trained on 16×33 (wf 0-0.005 cycles/Hz, wt ±64 Hz)"), name
        assert message.endswith(f"extract the table with the model's grid ({flags})") and "\n" not in message


@pytest.mark.parametrize("flags, field", [(("--features-mps-n-wf", "1000000"), "mps_n_wf"),
                                          (("--features-mps-n-wt", "1000001"), "mps_n_wt"),
                                          (("--features-mps-n-wf", "100000", "--features-mps-n-wt", "100001"),
                                           "mps_n_wf")])
def test_a_grid_past_the_declared_maximum_stops_in_one_line_and_help_says_the_maximum(flags, field, tmp_path, capsys):
    """A million points asked 4 GB of a worker, then failed as "cannot write to output"; 1000001 wrote 360 MB per
    clip without a word; the dry run of 100000 x 100001 ended in a traceback. The maximum is declared on the fields,
    so the check, ``--help`` and the configuration reference (``describe``) all say it."""
    (tmp_path / "clips").mkdir()
    code = main(["extract", "--manifest", str(tmp_path / "clips"), "--output", str(tmp_path / "out"), *flags,
                 "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"acoustic-env: error: features.{field}: must be an integer in "
                                 f"[{2 if field == 'mps_n_wf' else 3}, {MPS_MAX_POINTS}], got {flags[1]}"]
    assert not (tmp_path / "out").exists()
    helps = {flag: text for _, flag, text in describe(ExtractConfig)}
    assert f"an integer in [2, {MPS_MAX_POINTS}]" in helps["--features-mps-n-wf"]
    assert f"an integer in [3, {MPS_MAX_POINTS}]" in helps["--features-mps-n-wt"]
    from_dict(ExtractConfig, {"manifest": "m", "output": "o",  # the largest grid itself is accepted
                              "features": {"mps_n_wf": MPS_MAX_POINTS, "mps_n_wt": MPS_MAX_POINTS}})
