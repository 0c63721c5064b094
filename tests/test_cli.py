"""The command line: flags generated from the config declarations, one name per concept, one-line errors.

Nothing here starts Ray: every case stops at parsing or validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import acoustic_env
from acoustic_env.cli import build_parser, main
from acoustic_env.config import (
    AnnotateConfig,
    AuditConfig,
    ExtractConfig,
    TrainConfig,
)
from acoustic_env.config.flags import add_flags, from_args
from acoustic_env.config.review import AuditReviewConfig
from acoustic_env.config.schema import ConfigError, Section, from_dict, option

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"extract": ["--manifest", "m.csv", "--output", "o"], "train": ["--features", "f", "--output", "o"],
            "audit": ["--features", "f", "--output", "o"],
            "annotate": ["--manifest", "m.csv", "--model", "m", "--features", "f", "--output", "o"]}
CONFIGS = {"extract": ExtractConfig, "train": TrainConfig, "audit": AuditConfig, "annotate": AnnotateConfig}


def subparser(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def flag_helps(*names: str) -> dict[str, str]:
    """Flag → its help text, as ``acoustic-env <names> --help`` shows it."""
    return {opt: a.help or "" for a in subparser(*names)._actions for opt in a.option_strings}


def parse(command: str, *argv: str):
    """The validated config the command would run with."""
    return from_args(CONFIGS[command], build_parser().parse_args([command, *REQUIRED[command], *argv]))


def as_typed(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "empty"
    return str(value)


# --- flags come from the declarations -------------------------------------------------

@pytest.mark.parametrize("command, cls, renamed", [
    ("train", TrainConfig, {"time_budget_s": "--time-budget"}),
    ("audit", AuditConfig, {}),
    ("extract", ExtractConfig, {}),
])
def test_every_field_has_a_flag_showing_its_default(command, cls, renamed):
    helps = flag_helps(command)
    for f in dataclasses.fields(cls):
        if f.name in ("decode", "features"):
            continue  # sections: their fields are checked below
        flag = renamed.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag in helps, flag
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is dataclasses.MISSING:
            assert "required" in helps[flag]
        elif default is not None and not isinstance(default, dict):
            assert f"default: {as_typed(default)}" in helps[flag], (flag, helps[flag])


def test_section_fields_have_prefixed_flags():
    helps = flag_helps("extract")
    decode, features = ExtractConfig.__dataclass_fields__["decode"], ExtractConfig.__dataclass_fields__["features"]
    for section, prefix in ((decode, "--decode-"), (features, "--features-")):
        for f in dataclasses.fields(section.default_factory()):
            flag = "--signals" if f.name == "signals" else prefix + f.name.replace("_", "-")
            assert f"default: {as_typed(f.default)}" in helps[flag], flag


@dataclass(frozen=True)
class Inner(Section):
    depth: int = option(3, ge=1, help="how deep")


@dataclass(frozen=True)
class Job(Section):
    name: str = option(help="what to call it")
    sizes: tuple[int, ...] = option((1, 2), help="sizes to try")
    fast: bool = option(False, help="go fast")
    inner: Inner = option(factory=Inner, help="inner section")


def test_a_new_field_is_a_flag_and_a_config_key_at_once(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser, Job)
    text = parser.format_help()
    for needle in ("--name NAME", "what to call it (required)", "sizes to try (comma-separated; default: 1,2)",
                   "--fast, --no-fast", "--inner-depth N", "how deep (default: 3)"):
        assert needle in " ".join(text.split()), needle
    (tmp_path / "job.yaml").write_text("name: a\ninner:\n  depth: 5\n")
    args = parser.parse_args(["--config", str(tmp_path / "job.yaml"), "--sizes", "4,8", "--fast"])
    assert from_args(Job, args) == Job(name="a", sizes=(4, 8), fast=True, inner=Inner(depth=5))
    with pytest.raises(ConfigError, match=r"^inner\.depth: must be an integer >= 1, got 0$"):
        from_args(Job, parser.parse_args(["--name", "a", "--inner-depth", "0"]))


# --- values: flags over the config file, parsed by type ---------------------------------

def test_flags_override_the_config_file_and_leave_the_rest(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("trials: 3\nseed: 5\nprogress: false\nfeature_groups: [indices, mps]\n")
    cfg = parse("train", "--config", str(path), "--trials", "4", "--pca", "mps=0.9,indices=12", "--no-ablations")
    assert (cfg.trials, cfg.seed, cfg.progress, cfg.ablations) == (4, 5, False, False)
    assert cfg.feature_groups == ("indices", "mps") and cfg.pca == {"mps": 0.9, "indices": 12}


def test_section_flags_merge_with_the_file_section(tmp_path):
    path = tmp_path / "extract.json"
    path.write_text(json.dumps({"features": {"impl": "reference", "mps_n_wt": 17}}))
    cfg = parse("extract", "--config", str(path), "--signals", "raw,bg", "--features-maad-flim-mid", "1000,4000",
                "--decode-min-duration-s", "1")
    assert (cfg.features.impl, cfg.features.mps_n_wt, cfg.features.signals) == ("reference", 17, ("raw", "bg"))
    assert cfg.features.maad_flim_mid == (1000.0, 4000.0) and cfg.decode.min_duration_s == 1.0


def test_annotate_takes_the_extract_options_into_its_extract_section():
    cfg = parse("annotate", "--audio-root", "/audio", "--no-progress", "--batch-size", "2", "--features-impl",
                "reference", "--weights-cache", "/cache")
    assert cfg.model == os.path.abspath("m") and cfg.features == os.path.abspath("f")  # local paths stored absolute
    # a section keeps the fields given only: the rest are the model's table's (annotate.list_config)
    assert cfg.extract == {"audio_root": "/audio", "progress": False, "batch_size": 2, "weights_cache": "/cache",
                           "features": {"impl": "reference"}}
    assert "--embedders" not in flag_helps("annotate")  # the model decides


# --- one name per concept --------------------------------------------------------------

@pytest.mark.parametrize("command, argv, field, value", [
    ("train", ["--feature-groups", "indices,mps_fg"], "feature_groups", ("indices", "mps_fg")),
    ("audit", ["--feature-groups", "indices"], "feature_groups", ("indices",)),
    ("audit", ["--classifier", "xgboost"], "classifier", "xgboost"),
    ("audit", ["--review-top", "7"], "review_top", 7),
    ("extract", ["--weights-cache", "/c"], "weights_cache", "/c"),
    ("train", ["--tuning-trials", "3"], "tuning_trials", 3),
    ("train", ["--tuning-folds", "3"], "tuning_folds", 3),
    ("train", [], "saved_model", "chosen"),
])
def test_renamed_flags(command, argv, field, value):
    assert getattr(parse(command, *argv), field) == value


@pytest.mark.parametrize("argv", [
    ["train", "--features", "f", "--output", "o", "--groups", "indices"],
    ["train", "--features", "f", "--output", "o", "--search-trials", "3"],  # search is search by example now
    ["train", "--features", "f", "--output", "o", "--search-folds", "3"],
    ["audit", "--features", "f", "--output", "o", "--model", "xgboost"],
    ["audit-review", "--audit", "a", "--top", "3"],
    ["models", "list", "--cache-dir", "c"],
    ["recipe", "esc50", "root", "out", "--output", "o"],
])
def test_old_names_are_gone_with_one_line(capsys, argv):
    """An unknown flag: one line, which names it and the help of the command it was given to."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    command = " ".join(a for a in argv[:2] if not a.startswith("-"))
    assert info.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments: --" in err
    assert err.endswith(f" (see acoustic-env {command} --help)\n"), err


@pytest.mark.parametrize("given, line", [
    ({"search_trials": 3}, "search_trials: unknown field (known: "),
    ({"search_folds": 3}, "search_folds: unknown field (known: "),
    ({"saved_model": "record"}, "saved_model: must be one of ['chosen', "),
])
def test_a_config_file_with_an_old_name_is_one_line(given, line):
    """Issue 83 part 4: hyper-parameter tuning is no search and the model train picks is the chosen one, not the
    model of record: a config file's old key or value is refused in one line, never taken as an alias."""
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"features": "f", "output": "o", **given})
    assert str(info.value).startswith(line) and "\n" not in str(info.value)


def test_a_misspelt_flag_is_named_with_the_flag_meant(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--manifest", "m", "--outptu", "o"])
    assert capsys.readouterr().err == ("acoustic-env: error: unrecognized arguments: --outptu o; did you mean --output? "
                                       "(see acoustic-env extract --help)\n")


def test_same_concept_same_flag_on_every_command():
    for command in ("list", "fetch", "convert"):
        args = build_parser().parse_args(["models", command, "--weights-cache", "/c"])
        assert args.weights_cache == "/c"
    assert flag_helps("models", "list")["--weights-cache"] == flag_helps("extract")["--weights-cache"]
    args = build_parser().parse_args(["audit-review", "--audit", "a", "--review-top", "3", "--random-sample", "4"])
    review = from_args(AuditReviewConfig, args)
    assert (review.review_top, review.random_sample) == (3, 4)
    assert "artifact" in flag_helps("annotate")["--model"] and "--model" not in flag_helps("audit")


def test_config_files_use_the_same_names():
    assert from_dict(AuditConfig, {"features": "f", "output": "o", "classifier": "mlp"}).classifier == "mlp"
    with pytest.raises(ConfigError, match=r"^groups: unknown field \(known: .*feature_groups"):
        from_dict(TrainConfig, {"features": "f", "output": "o", "groups": "indices"})
    with pytest.raises(ConfigError, match=r"^model: unknown field"):
        from_dict(AuditConfig, {"features": "f", "output": "o", "model": "mlp"})
    # a near miss names the field meant, with its section
    with pytest.raises(ConfigError, match=r"^windows\.hop: unknown field, did you mean windows\.hop_s\? \(known: "):
        from_dict(AnnotateConfig, {"model": "m", "features": "f", "output": "o", "windows": {"hop": 3}})


# --- mistakes end in one line ------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["train", "--features", "f", "--output", "o", "--trials", "-1"], "trials: must be an integer >= 0, got -1"),
    (["train", "--features", "f", "--output", "o", "--seed", "x"], "seed: must be an integer, got 'x'"),
    (["extract", "--manifest", "m", "--output", "o", "--signals", "raw,mid"], "features.signals: must be a non-empty"),
    (["extract", "--manifest", "m", "--output", "o", "--embedders", "vggish,vggish"], "embedders: must not repeat"),
    (["annotate", "--manifest", "m", "--model", "m", "--features", "f", "--output", "o", "--decode-max-duration-s",
      "0.1"], "extract.decode.max_duration_s: must be > decode.min_duration_s, got 0.1"),
    (["audit", "--output", "o"], "features: is required (--features or in --config)"),
    # every job's seed is declared with its range: -1 used to start the job and fail after it
    (["train", "--features", "f", "--output", "o", "--seed", "-1"],
     "seed: must be an integer in [0, 2147483647], got -1"),
    (["audit", "--features", "f", "--output", "o", "--seed", str(2**32)],
     "seed: must be an integer in [0, 2147483647], got 4294967296"),
    (["audioset", "sample", "--segments", "s.csv", "--output", "o.csv", "--total", "4", "--seed", "-1"],
     "seed: must be an integer in [0, 2147483647], got -1"),
    (["audioset", "frames", "--features", "f", "--output", "o.json", "--seed", "-1"],
     "seed: must be an integer in [0, 2147483647], got -1"),
])
def test_bad_flag_value_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"acoustic-env: error: {message}")


@pytest.mark.parametrize("text, message", [
    ("features: f\noutput: o\nfolds: 1\n", "folds: must be an integer in [2, 50], got 1"),
    ("features: f\noutput: o\nfolds: [2]\n", "folds: must be an integer, got [2]"),
    ("features: f\noutput: o\nfoldz: 3\n", "foldz: unknown field, did you mean folds? (known: classifier, "
                                           "feature_groups"),
    ("- features\n", "must hold a mapping of field names to values"),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, message):
    (tmp_path / "audit.yaml").write_text(text)
    assert main(["audit", "--config", str(tmp_path / "audit.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --- hand-written commands -------------------------------------------------------------

def test_audit_review_rebuilds_with_the_audit_defaults(monkeypatch, capsys, tmp_path):
    import acoustic_env.jobs.audit.job as job

    calls, a = [], str(tmp_path)  # the audit read must be there (its path checks)
    monkeypatch.setattr(job, "rebuild_review", lambda *a: calls.append(a) or "page.html")
    assert main(["audit-review", "--audit", a, "--random-sample", "3"]) == 0
    assert main(["audit-review", "--audit", a, "--review-top", "0", "--seed", "2"]) == 0
    assert calls == [(a, AuditConfig.review_top, 3, 0), (a, 0, AuditConfig.random_sample, 2)]
    assert main(["audit-review", "--audit", str(tmp_path / "gone")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"audit: no such file or directory: {tmp_path / 'gone'}")


def test_demo_checks_its_options_before_generating_data(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "d"), "--features-impl", "nope"]) == 2
    assert "impl: must be one of" in capsys.readouterr().err and not (tmp_path / "d").exists()


# --- version, and help without the heavy libraries -------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"acoustic-env {acoustic_env.__version__}\n"


def test_help_imports_neither_torch_nor_ray_nor_sklearn():
    commands = [[], ["extract"], ["train"], ["audit"], ["annotate"], ["demo"], ["audit-review"], ["audit-estimate"],
                ["models"], ["models", "fetch"]]
    code = ("import sys\nfrom acoustic_env.cli import main\n"
            f"for argv in {commands!r}:\n"
            "    try:\n        main([*argv, '--help'])\n    except SystemExit:\n        pass\n"
            "print([m for m in ('torch', 'ray', 'sklearn') if m in sys.modules], file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stderr.strip() == "[]", out.stderr[-2000:]
    assert "usage: acoustic-env models fetch" in out.stdout


def test_a_submitted_job_takes_the_same_flags():
    """What ``ray job submit`` runs, ``python -m acoustic_env.cli <job>``, refuses a bad value as the command does."""
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "audit", "--features", "f", "--output", "o",
                          "--classifier", "cnn"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    [line] = out.stderr.splitlines()
    assert out.returncode == 2 and line.startswith("acoustic-env: error: classifier: must be one of [")
    assert "'logreg', 'elasticnet'" in line and line.endswith("], got 'cnn'")


# --- named features: FeatureSet.to_pandas(named=True) and `export --wide` ----------------

def test_named_columns_hold_the_same_values_as_the_vectors(tmp_path):
    import numpy as np

    from acoustic_env.demo.tables import synthetic_table, write_features
    from acoustic_env.table import read_features

    table = write_features(synthetic_table(12, seed=5), str(tmp_path / "t"))
    data = read_features(table, feature_groups=["indices_raw", "mps_fg"])
    df = data.to_pandas(named=True)
    names = data.feature_names()
    assert list(df.columns) == ["clip_id", "uri", "start_s", "end_s", "labels", "group", *names]
    assert "indices_raw:ACI" in names and any(n.startswith("mps_fg[wf=") for n in names)
    np.testing.assert_array_equal(df[names].to_numpy(dtype=np.float32), data.matrix())
    aci = names.index("indices_raw:ACI")
    np.testing.assert_array_equal(df["indices_raw:ACI"].to_numpy(), data.X["indices_raw"][:, aci])
    stacked = data.to_arrow(named=False)
    assert stacked.schema.field("mps_fg").type.list_size == data.columns["mps_fg"]


def test_export_wide_parquet_and_csv_round_trip(tmp_path, capsys):
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from acoustic_env.demo.tables import synthetic_table, write_features
    from acoustic_env.table import read_features

    table = write_features(synthetic_table(10, seed=6, embedders=("vggish",)), str(tmp_path / "t"))
    data = read_features(table)
    for name in ("wide.parquet", "wide.csv"):
        out = tmp_path / name
        assert main(["export", table, "--wide", "--output", str(out)]) == 0
        assert capsys.readouterr().out.startswith(f"export: 10 clips x {6 + len(data.feature_names())} columns")
        df = pq.read_table(out).to_pandas() if name.endswith(".parquet") else pd.read_csv(out)
        assert not any(c.startswith("vggish") for c in df.columns)  # random weights: left out, as by every job
        np.testing.assert_allclose(df["indices_raw:ACI"].to_numpy(), data.to_pandas()["indices_raw:ACI"].to_numpy(),
                                   rtol=1e-6)
    assert pd.read_csv(tmp_path / "wide.csv")["labels"][0].count(";") >= 1  # list columns as a;b text
    # a CSV cell holds no vector: a .csv is wide without the flag
    assert main(["export", table, "--output", str(tmp_path / "plain.csv")]) == 0
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "wide.csv").read_bytes()
    capsys.readouterr()
    # a clip whose exported group holds a NaN is left out, and the line counts it
    raw = synthetic_table(10, seed=6, embedders=("vggish",))
    values = raw["indices_raw"].combine_chunks()
    flat = values.values.to_numpy(zero_copy_only=False).copy()
    flat[3] = np.nan
    raw = raw.set_column(raw.schema.get_field_index("indices_raw"), "indices_raw",
                         pa.FixedSizeListArray.from_arrays(pa.array(flat, values.type.value_type), values.type.list_size))
    holed = write_features(raw, str(tmp_path / "holed"))
    assert main(["export", holed, "--output", str(tmp_path / "holed.parquet")]) == 0
    assert capsys.readouterr().out.strip().endswith(
        f"-> {tmp_path / 'holed.parquet'} (1 clips left out: a value of an exported group is missing or not finite; "
        "--feature-groups exports fewer)")
    assert pq.read_table(tmp_path / "holed.parquet").num_rows == 9
    assert main(["export", holed, "--feature-groups", "spectral", "--output", str(tmp_path / "sp.parquet")]) == 0
    assert "left out" not in capsys.readouterr().out
    assert main(["export", table, "--output", str(tmp_path / "narrow.parquet")]) == 0
    assert pq.read_schema(tmp_path / "narrow.parquet").field("indices_raw").type.list_size == 60
    # a task no clip has a target for: one line, no empty file that looks like an export
    assert main(["export", table, "--task", "labels:owl,frog", "--output", str(tmp_path / "none.parquet")]) == 2
    assert capsys.readouterr().err.strip() == (f"acoustic-env: error: task: no clip of {table} has a target for "
                                               "labels:owl,frog (and finite features): nothing to export; leave "
                                               "--task out to export every clip")
    assert not (tmp_path / "none.parquet").exists()


#: Flags a help text cites that belong to another program or command, named as such there.
OTHER_PROGRAMS_FLAGS = {
    ("audioset fetch", "--downloader"): {"--format", "--no-playlist", "--no-warnings", "--quiet"},  # yt-dlp's
    ("audioset frames", "--features"): {"--keep-frames"},  # audioset embeddings' flag, named with its command
    ("labels new-class", "--verdicts"): {"--save"},  # search --save
    ("submit", "--options"): {"--output"},  # the submitted job's own flags, passed on to its command
}


def test_every_flag_a_help_text_cites_is_a_flag_of_its_command():
    """Issue 82, 22: ``predict --help`` cited ``--ray-address``, a flag predict does not have (the help of an option
    predict shares with annotate, which has it). Every ``--flag`` in a command's help is one of its own flags, or
    another program's named there (``OTHER_PROGRAMS_FLAGS``)."""
    import re

    def commands(parser: argparse.ArgumentParser, name: str):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield name, parser
        for sub in subs:
            for word, child in sub.choices.items():
                yield from commands(child, f"{name} {word}".strip())

    foreign = {}
    for name, parser in commands(build_parser(), ""):
        own = {flag for action in parser._actions for flag in action.option_strings}
        for action in parser._actions:
            key = (name, action.option_strings[0] if action.option_strings else action.dest)
            cited = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", action.help or ""))
            if cited - own - OTHER_PROGRAMS_FLAGS.get(key, set()):
                foreign[key] = sorted(cited - own)
    assert not foreign, f"help texts citing a flag their command lacks: {foreign}"
