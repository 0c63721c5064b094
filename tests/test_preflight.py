"""The paths of every job (issue 60): each output kept apart from each input, whatever spelling or link
names them. No Ray here.

Which fields are paths, and whether a job reads or writes each, is declared with the field
(``role``); the cases below come from those declarations, so a new job or path field is covered
(or, declared without a role, fails :func:`test_every_path_field_declares_its_role`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from acoustic_env import config as config_package
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, Section, from_dict
from acoustic_env.config import audioset as audioset_configs
from acoustic_env.config.common import _absolute
from acoustic_env.config.schema import ROLES
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.jobs.preflight import READ, WRITTEN, preflight
from acoustic_env.storage import nesting
from acoustic_env.vocabulary.ontology import PACKAGED_ONTOLOGY


def declared(cls: type, prefix: str = "") -> Iterator[tuple[str, str, bool]]:
    """(role, dotted name, whether a list) of every path field ``cls`` declares, annotate's ``extract`` included."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("flags_from"):  # those it may take: not the ones it sets itself
            taken, left_out = f.metadata["flags_from"]
            yield from (d for d in declared(taken, f"{prefix}{f.name}.") if d[1].split(".")[-1] not in left_out)
        elif f.metadata.get("role"):
            yield f.metadata["role"], prefix + f.name, "tuple" in str(f.type)


def job_configs() -> list[type]:
    """Every config with a path field: those the config package hands on and the AudioSet commands'."""
    found = {c for module in (config_package, audioset_configs) for _, c in inspect.getmembers(module, inspect.isclass)
             if issubclass(c, Section) and c is not Section and any(declared(c))}
    return sorted(found, key=lambda c: c.__name__)


#: Fields that are not paths but that a valid config of the job needs.
REQUIRED = {"SearchConfig": {"example": "clip-1"}, "SampleConfig": {"per_class": 1}}
#: (config, field): the field it replaces. Annotate takes a list or a directory of lists, not both.
INSTEAD = {("AnnotateConfig", "lists"): "manifest"}


def build(cls: type, tmp: Path, out: str | None = None, output: str | None = None, inp: str | None = None) -> Section:
    """A valid config of ``cls`` with its path fields given: each input an existing directory under ``tmp/in``
    (an ontology: the package's file), each output apart under ``tmp/out`` but ``out``, set to ``output``;
    ``inp``: an input given instead of the one it replaces (:data:`INSTEAD`)."""
    data: dict = dict(REQUIRED.get(cls.__name__, {}))
    skipped = {replaced if field == inp else field for (c, field), replaced in INSTEAD.items() if c == cls.__name__}
    for role, name, many in declared(cls):
        if name in skipped or role == "cache":
            continue
        if name == out:
            value = output
        elif role in READ:
            path = tmp / "in" / name / "in.parquet"  # a directory, which every input's check takes, in its own
            path.mkdir(parents=True, exist_ok=True)
            value = PACKAGED_ONTOLOGY if name.endswith("ontology") else str(path)
        else:
            value = str(tmp / "out" / f"{name}.parquet")
        head, _, key = name.partition(".")
        (data.setdefault(head, {}) if key else data)[key or head] = (value,) if many else value
    return from_dict(cls, data)


def cases() -> Iterator[object]:
    """Every (job, output field, input field) pair, with the output on, inside or around the input."""
    for cls in job_configs():
        fields = list(declared(cls))
        for _, out, _ in (f for f in fields if f[0] in WRITTEN):
            for _, inp, _ in (f for f in fields if f[0] in READ and not f[1].endswith("ontology")):
                for how in ("is", "inside", "contains"):
                    yield pytest.param(cls, out, inp, how, id=f"{cls.__name__}-{out}-{how}-{inp}")


def test_every_path_field_declares_its_role():
    """A field stored as a path (``_absolute``, or a list of them) says what its job does with it."""
    unroled = [f"{cls.__name__}.{f.name}" for cls in job_configs() for f in dataclasses.fields(cls)
               if (f.metadata.get("parse") is _absolute or getattr(f.metadata.get("parse"), "__name__", "") == "_paths")
               and f.metadata.get("role") not in ROLES]
    assert unroled == []
    assert {c.__name__ for c in job_configs()} >= {"ExtractConfig", "TrainConfig", "AuditConfig", "SearchConfig",
                                                   "AnnotateConfig", "ServeConfig", "SampleConfig", "FetchConfig",
                                                   "RescoreConfig", "FramesConfig"}


@pytest.mark.parametrize("cls", job_configs(), ids=lambda c: c.__name__)
def test_a_job_with_its_paths_apart_passes(cls, tmp_path):
    """The control of the cases below: the same configs, every output apart, pass."""
    preflight(build(cls, tmp_path))


@pytest.mark.parametrize("cls, out, inp, how", list(cases()))
def test_no_output_is_holds_or_lies_inside_an_input(cls, out, inp, how, tmp_path):
    """Through a symbolic link: the output's path names the input (or its folder) by another name."""
    build(cls, tmp_path, inp=inp)  # makes the inputs
    link = tmp_path / "link.parquet"
    target = tmp_path / "in" / inp / "in.parquet"
    link.symlink_to(target.parent if how == "contains" else target)
    output = link / "sub.parquet" if how == "inside" else link
    with pytest.raises(ConfigError) as info:
        preflight(build(cls, tmp_path, out=out, output=str(output), inp=inp))
    said = {"is": "is the", "inside": "lies inside the", "contains": "holds the"}[how]
    assert str(info.value).startswith(f"{out}: {output} {said} {inp} this job reads ("), str(info.value)


def test_remote_paths_are_compared_as_normalised_urls():
    assert nesting("s3://bucket/t/features/found.parquet", "s3://bucket/t/") == "inside"
    assert nesting("s3://bucket/t/./x/../", "s3://bucket/t") == "is"
    assert nesting("s3://bucket/t", "s3://bucket/t/features/part-1.parquet") == "contains"
    assert nesting("s3://bucket/t2", "s3://bucket/t") is None and nesting("s3://other/t", "s3://bucket/t") is None


# --- the commands of issue 60, item 1: each refused in one line, the table untouched ----------------------

@pytest.fixture
def table(tmp_path: Path) -> Path:
    return Path(write_features(synthetic_table(12, seed=1), str(tmp_path / "T")))


def _files(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, said", [
    (["search", "--features", "{one}", "--example", "clip0000000", "--save", "{one}"], "save: {one} is the features"),
    (["export", "{T}", "--wide", "--output", "{T}/features/part-x.parquet"], "output: {T}/features/part-x.parquet "
                                                                               "lies inside the features"),
    (["export", "{link}", "--output", "{T}/features/x.parquet"], "output: {T}/features/x.parquet lies inside the "
                                                                  "features"),
    (["search", "--features", "{T}", "--example", "clip0000000", "--save", "{T}/features/found.parquet"],
     "save: {T}/features/found.parquet lies inside the features"),
    (["duplicates", "{T}", "--column", "indices", "--output", "{link}/features/pairs.parquet"],
     "output: {link}/features/pairs.parquet lies inside the features"),
    (["train", "--features", "{T}", "--output", "{T}/model"], "output: {T}/model lies inside the features"),
    (["predict", "{T}/x.wav", "--model", "{link}", "--save", "{T}/x.csv"], "save: {T}/x.csv lies inside the model"),
    (["predict", "{T}", "--model", "{T}/m", "--output", "{T}/../T"], "output: {T}/../T is the inputs"),
], ids=["search-save-on-its-table", "export-into-features", "export-through-a-link", "search-save-into-features",
        "duplicates-through-a-link", "train-inside", "predict-save-in-model", "predict-output-on-inputs"])
def test_an_output_on_or_inside_the_table_read_is_one_line(argv, said, table, tmp_path, capsys):
    one = tmp_path / "one.parquet"
    one.write_bytes((table / "features" / "part-synthetic-0000.parquet").read_bytes())
    (tmp_path / "link").symlink_to(table)
    names = {"T": table, "one": one, "link": tmp_path / "link"}
    before = _files(tmp_path)
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"acoustic-env: error: {said.format(**names)}"), err
    assert _files(tmp_path) == before  # nothing written, nothing replaced


# --- issue 60, item 6: a file that is not a table given for one ---------------------------------------

@pytest.mark.parametrize("argv", [
    ["search", "--features", "{csv}", "--example", "x"], ["train", "--features", "{csv}", "--output", "{out}"],
    ["train", "--features", "{csv}", "--output", "{out}", "--dry-run"], ["audit", "--features", "{csv}", "--output",
                                                                          "{out}"],
    ["export", "{csv}", "--wide", "--output", "{out}.parquet"], ["duplicates", "{csv}", "--column", "indices",
                                                                  "--output", "{out}.parquet"],
], ids=["search", "train", "train-dry-run", "audit", "export", "duplicates"])
def test_a_clip_list_given_as_the_table_is_one_line_before_any_output(argv, tmp_path, capsys):
    csv = tmp_path / "labels.csv"
    csv.write_text("clip_id,labels\na,urban\n")
    out = tmp_path / "out"
    assert main([a.format(csv=csv, out=out) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"acoustic-env: error: features: {csv} is a file, not a feature table: give an extract output, "
                   "its features/ directory or a .parquet file"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]  # no output, no logs/


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("argv, field", [
    (["extract", "--manifest", "{labels}", "--output", "/proc/acoustic-env-out"], "output"),
    (["predict", "{labels}", "--model", "{tmp}/model", "--save", "/proc/predictions.csv"], "save"),
    (["train", "--features", "{table}", "--output", "/proc/trained", "--dry-run"], "output"),
])
def test_a_place_no_file_can_be_created_in_is_one_line_before_any_work(argv, field, tmp_path, capsys):
    """/proc: ``access()`` says yes to root there, and creating a file fails (predict once scored every file, then
    died on --save with a traceback). A file made and removed in the nearest existing folder says it up front, for
    root and for anyone."""
    table = write_features(synthetic_table(12, seed=1), str(tmp_path / "t"))
    labels = tmp_path / "labels.csv"
    labels.write_text("uri,labels\nmissing.wav,a\n")
    args = [a.format(labels=labels, tmp=tmp_path, table=table) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"acoustic-env: error: {field}: cannot "), err
    assert "/proc" in err[0]
