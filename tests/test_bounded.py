"""The one reader of a user's files (``acoustic_env/bounded.py``, issue 82, 1-3 and 20), held to its rules through
every reader that uses it: a FIFO, a link to ``/dev/zero`` and a 20-GB sparse file each give one line naming the
file, quickly, with the memory of the process unchanged; a YAML alias bomb is refused before anything expands it.

The cases that could hang (a FIFO opened, ``/dev/zero`` read) run in one subprocess under a timeout, so that a
regression fails the test instead of holding the suite; the model folder's files are ``tests/test_model_artifact.py``'s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import yaml

from acoustic_env.bounded import MAX_YAML_NODES, QUOTED_CHARS, load_yaml, read_bytes, shown
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features

#: The size of the sparse file: 20 GiB that cost nothing on disk.
SPARSE = 20 << 30


def alias_bomb(depth: int = 9, width: int = 9) -> str:
    """Nested anchors: each level lists the one below ``width`` times, ``width ** depth`` values expanded (387
    billion at 9 x 9, from 384 bytes)."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def hostile(folder: Path, name: str) -> dict[str, Path]:
    """Three files named ``<kind>-<name>`` in ``folder``: a FIFO, a link to /dev/zero, a 20-GB sparse file."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo, zero, sparse = (folder / f"{kind}-{name}" for kind in ("fifo", "zero", "sparse"))
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    sparse.touch()
    os.truncate(sparse, SPARSE)
    return {"fifo": fifo, "zero": zero, "sparse": sparse}


def refused(line: str, path: Path, of: str) -> bool:
    """Whether ``line`` refuses ``path`` as the reader does: not a regular file, or over the limit of ``of``."""
    kind = path.name.split("-", 1)[0]
    if kind == "sparse":
        return f"{path} is 20 GiB ({SPARSE:,} bytes), over the limit of {of} (" in line
    return f"{path} is not a regular file (a FIFO, a device or a socket); give a file" in line


#: Runs each case (JSON on stdin: a reader named ``module:function`` with its arguments, or one of the helpers
#: here) and prints its one line (``read`` if it read), then how far the process's peak memory grew.
_READ_EACH = """
import contextlib, importlib, io, json, resource, sys

def label_list(path):
    from acoustic_env.labels.label_list import read_label_list
    from acoustic_env.vocabulary.tasks import load_task
    read_label_list(path, load_task("urban_natural"))

def weights(path):
    from acoustic_env.embedders import panns
    from acoustic_env.embedders.weights import read_verified
    read_verified(panns.SPEC.weights, path, "0" * 64)

def manifest(path):
    from acoustic_env.audio.manifest import detect_format
    detect_format(path)

def weights_status(cache):
    from dataclasses import replace
    from acoustic_env.embedders import panns
    from acoustic_env.embedders.weights import status
    row = status(replace(panns.SPEC.weights, sha256=None, size=None, md5=None), cache)  # no size to compare
    raise SystemExit(f"{row['status']}: {row.get('reason')}")

def swapped(path):
    import acoustic_env.bounded as bounded
    bounded.file_size = lambda *args: None  # as if the file was regular at its stat, and a FIFO by its open
    bounded.read_bytes(path, "f", 100, "a file")

def quoted_deep():
    from acoustic_env.bounded import shown
    deep = ["lol"]
    for _ in range(30):
        deep = [deep] * 9
    raise SystemExit(shown(deep))

def cli(argv):
    from acoustic_env.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    raise SystemExit(f"{code} " + " | ".join(err.getvalue().strip().splitlines()))

cases = json.load(sys.stdin)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name, args in cases:
    module, _, function = name.rpartition(":")
    call = getattr(importlib.import_module(module), function) if module else globals()[function]
    try:
        call(*args)
        print("read")
    except SystemExit as e:
        print(e.code)
    except Exception as e:
        print(type(e).__name__ + ": " + " | ".join(str(e).splitlines()))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def read_each(cases: list[tuple[str, list]]) -> tuple[list[str], int, float]:
    """Each case's line (``_READ_EACH``), the memory the process grew by over them, and the seconds it all took."""
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _READ_EACH], input=json.dumps(cases), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    *lines, grew = out.stdout.strip().splitlines()
    return lines, int(grew), time.monotonic() - start


def test_every_reader_refuses_a_fifo_dev_zero_and_a_sparse_file_in_one_line(tmp_path):
    """The verdicts (add-verdicts' and audit-estimate's reader), label lists (train's, audit's, annotate's and
    audit-estimate's), test and truth lists, the label-accuracy estimate, the ontology, task, config and tag-map YAML,
    a clip list (extract's, annotate's --manifest), a recipe's metadata and the weights cache (the PANNs warm start's checkpoint): each of
    the three files is one line naming it and the limit, and nothing reads it (the process grows < 50 MB, where
    /dev/zero took 3 GB in 5 s and a FIFO hung)."""
    readers = {  # file name: (the reader, what its limit is of)
        "v.json": ("acoustic_env.jobs.audit.estimate:read_verdicts", "a verdict file"),
        "l.csv": ("label_list", "a label list"),
        "t.csv": ("acoustic_env.jobs.train.inputs:read_test_list", "a test list"),
        "truth.csv": ("acoustic_env.jobs.audit.job:read_truth", "a truth list"),
        "acc.json": ("acoustic_env.jobs.train.inputs:read_label_accuracy", "a label-accuracy estimate"),
        "task.yaml": ("acoustic_env.vocabulary.tasks:load_task", "a task file"),
        "c.yaml": ("acoustic_env.config:load_config_file", "a config file"),
        "map.yaml": ("acoustic_env.recipes.fsd50k_tags:load_tag_map", "a YAML file"),
        "w.pt": ("weights", "a weights file"),
        "onto.json": ("acoustic_env.vocabulary.ontology:load_ontology", "an ontology or class list"),
        "clips.csv": ("manifest", "a clip list"),
        "meta.csv": ("acoustic_env.recipes.common:read_csv", "a collection's metadata file"),
    }
    cases, expected = [], []
    for name, (reader, of) in readers.items():
        for path in hostile(tmp_path, name).values():
            cases.append((reader, [[str(path)]] if reader.endswith("read_verdicts") else
                          [str(path), ["fname"]] if reader.endswith("read_csv") else [str(path)]))
            expected.append((path, of))
    lines, grew, seconds = read_each(cases)
    assert len(lines) == len(expected)
    for line, (path, of) in zip(lines, expected):
        assert refused(line, path, of), line
        assert line.split(":", 1)[0] in ("ConfigError", "AuditError", "TaskError", "WeightsError", "OntologyError",
                                         "ManifestError"), line
    assert grew < 50 * 2**20, f"the process grew {grew / 2**20:.0f} MB"
    assert seconds < 30


def test_a_file_swapped_for_a_fifo_after_its_stat_is_refused_without_waiting(tmp_path):
    """Between the ``stat`` and the open, a file may become a FIFO: it is opened without blocking and its descriptor
    checked again, so the read neither waits for a writer nor reads the device."""
    files = hostile(tmp_path, "x")
    lines, _, seconds = read_each([("swapped", [str(files[kind])]) for kind in ("fifo", "zero")])
    assert lines == [f"ConfigError: f: {files[kind]} is not a regular file (a FIFO, a device or a socket); give a file"
                     for kind in ("fifo", "zero")] and seconds < 30


def test_models_list_says_bad_for_a_fifo_in_the_weights_cache_without_opening_it(tmp_path):
    """A weights file of no pinned size was opened to be hashed: a FIFO in the cache held ``models list``."""
    from acoustic_env.embedders import panns

    fifo = tmp_path / panns.SPEC.weights.filename
    os.mkfifo(fifo)
    (line,), _, seconds = read_each([("weights_status", [str(tmp_path)])])
    assert line == f"bad: weights: {fifo} is not a regular file (a FIFO, a device or a socket); give a file"
    assert seconds < 30


def test_an_audit_folder_handed_to_a_command_is_read_by_the_one_reader(tmp_path):
    """audit-estimate --labels, audioset rescore and audit-review --store read the summary.json of the --audit
    folder they are given: a FIFO or /dev/zero there is one line, not a hang or gigabytes."""
    cases, paths = [], []
    for kind in ("fifo", "zero"):
        audit = tmp_path / kind
        made = hostile(audit, "x")[kind]
        made.rename(audit / "summary.json")
        paths.append(audit / "summary.json")
        cases.append(("acoustic_env.jobs.runners:_after_corrections", [{}, str(audit), str(tmp_path / "l.csv"), []]))
    lines, grew, seconds = read_each(cases)
    assert lines == [f"ConfigError: audit: {p} is not a regular file (a FIFO, a device or a socket); give a file"
                     for p in paths]
    assert grew < 50 * 2**20 and seconds < 30


def test_a_label_store_path_that_is_a_file_is_refused_unread(tmp_path):
    """``--labels`` not named .csv is a label store, a folder: /dev/zero, a FIFO or a file given there is one line,
    never read as events."""
    files = hostile(tmp_path, "store")
    lines, _, _ = read_each([("label_list", [str(p)]) for p in files.values()])
    for line, path in zip(lines, files.values()):
        assert line == (f"ConfigError: labels: {path} is neither a label store (a folder) nor a corrected list (a "
                        "file named .csv)"), line


def test_a_list_of_no_clip_is_refused_by_every_reader_of_lists(tmp_path):
    """Issue 82, 20: audit-estimate --labels accepted a header-only list, which train and audit refuse; the refusal
    is now the list reader's, which all of them use (annotate alone takes an empty store: it skips nothing)."""
    from acoustic_env.jobs.runners import _after_corrections
    from acoustic_env.labels.label_list import read_label_list
    from acoustic_env.vocabulary.tasks import load_task

    header = tmp_path / "header.csv"
    header.write_text("clip_id,labels,source,reviewer,time,origin\n")
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "summary.json").write_text(json.dumps({"config": {"task": "urban_natural"}}))
    with pytest.raises(ConfigError) as caught:
        _after_corrections({}, str(audit), str(header), [])
    assert str(caught.value) == (f"labels: {header} lists no clip of task urban_natural: it would change nothing; "
                                 "leave --labels out to use the table's labels")
    assert read_label_list(str(header), load_task("urban_natural"), empty_ok=True).labels == {}


def test_the_reader_reads_a_regular_file_and_a_link_to_one_and_caps_the_read(tmp_path):
    """Locally and on an object store: a regular file (or a link to one) within its limit is read whole, one over it
    is one line naming the file and the limit, a directory is the caller's to name."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to(data)
    assert read_bytes(str(tmp_path / "link"), "f", 100, "a file") == b"x" * 100
    assert read_bytes(f"file://{data}", "f", 100, "a file") == b"x" * 100
    with pytest.raises(ConfigError, match=r"^f: .*data.bin is 100 bytes, over the limit of a thing "
                                          r"\(99 bytes\)$"):
        read_bytes(str(data), "f", 99, "a thing")
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path), "f", 100, "a file")
    fs = fsspec.filesystem("memory")  # an object store: its listed size is checked, the read capped the same way
    fs.pipe("/bounded/list.csv", b"y" * 2048)
    assert read_bytes("memory://bounded/list.csv", "f", 2048, "a file") == b"y" * 2048
    with pytest.raises(ConfigError, match=r"^f: memory://bounded/list.csv is 2 KiB \(2,048 bytes\), over the limit "
                                          r"of a list \(1 KiB\)$"):
        read_bytes("memory://bounded/list.csv", "f", 1024, "a list")
    fs.mkdir("/bounded/folder")
    fs.pipe("/bounded/folder/x", b"")
    with pytest.raises(IsADirectoryError):
        read_bytes("memory://bounded/folder", "f", 100, "a file")
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path / "nope"), "f", 100, "a file")


def test_a_yaml_alias_bomb_is_refused_fast_without_expanding(tmp_path):
    """384 bytes expanding to 387 billion values: refused by counting each anchor's values once (ms, not the
    1.5-2.9 GB and 30-60 s it took), as is an alias inside its own value; plain YAML reads as PyYAML's safe loader
    reads it, and a ``!!python`` tag is still refused."""
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_yaml(alias_bomb(), "task", "bomb.yaml")
    assert time.monotonic() - start < 2
    assert str(caught.value) == (f"task: bomb.yaml holds more than {MAX_YAML_NODES:,} values once its aliases are "
                                 "expanded, the limit of a YAML file; write the values out instead of repeating "
                                 "aliases")
    with pytest.raises(ConfigError, match=r"holds an alias inside the value it names \(a cycle\)"):
        load_yaml("a: &a [1, *a]\n", "task", "cycle.yaml")
    with pytest.raises(ConfigError, match=r"^task: deep.yaml: not YAML \(|nests its lists or mappings too deeply"):
        load_yaml("[" * 5000, "task", "deep.yaml")
    shared = "base: &b {x: [1, 2, 3]}\nuse: [*b, *b]\nmerged: {<<: *b, y: 2}\n"
    assert load_yaml(shared, "t", "s.yaml") == yaml.safe_load(shared)
    assert load_yaml(alias_bomb(3, 3), "t", "s.yaml") == yaml.safe_load(alias_bomb(3, 3))
    with pytest.raises(ConfigError, match=r"^t: p.yaml: not YAML \(could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']\n", "t", "p.yaml")


def test_no_module_but_the_reader_parses_yaml():
    """Every YAML the package reads goes through ``bounded.load_yaml``: a ``yaml.safe_load`` elsewhere (the cluster
    jobs' job.yaml had two) would expand an alias bomb again."""
    package = Path(__file__).resolve().parents[1] / "acoustic_env"
    loaders = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all|\w*Loader)\b")
    found = {str(f.relative_to(package)) for f in package.rglob("*.py") if loaders.search(f.read_text())}
    assert found == {"bounded.py"}


def test_a_yaml_bomb_as_task_config_or_tag_map_is_one_line_on_the_command_line(tmp_path):
    """``--task``, ``task:`` in ``--config`` and a category of ``--tag-map``: one line each, within seconds, where
    the error line alone was 802 KB at depth 5."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    config = tmp_path / "config.yaml"
    config.write_text(alias_bomb() + "task: *a8\n")
    tag_map = tmp_path / "map.yaml"
    tag_map.write_text(alias_bomb() + "music: *a8\n")
    table = write_features(synthetic_features(12, seed=1, signals=("raw",)).table, str(tmp_path / "table"))
    (tmp_path / "FSD50K").mkdir()  # the recipe's root is checked first: the map is read before the collection
    argvs = [["train", "--features", table, "--output", str(tmp_path / "o1"), "--task", str(bomb), "--dry-run"],
             ["train", "--config", str(config), "--features", table, "--output", str(tmp_path / "o2"), "--dry-run"],
             ["recipe", "fsd50k", str(tmp_path / "FSD50K"), str(tmp_path / "o3"), "--tag-map", str(tag_map)]]
    lines, grew, seconds = read_each([("cli", [argv]) for argv in argvs])
    assert lines[0] == (f"2 acoustic-env: error: task: {bomb} holds more than {MAX_YAML_NODES:,} values once its "
                        "aliases are expanded, the limit of a YAML file; write the values out instead of repeating "
                        "aliases")
    assert lines[1].startswith(f"2 acoustic-env: error: config: {config} holds more than ")
    assert lines[2].startswith(f"2 acoustic-env: error: --tag-map: {tag_map} holds more than ")
    assert grew < 50 * 2**20 and seconds < 30


def test_a_rejected_value_is_quoted_by_a_short_prefix():
    """A value that fails a check is quoted within ``QUOTED_CHARS``, built without expanding it whole: a list that
    holds itself 9^30 times over (a YAML alias bomb's shape) is a few characters, where its repr would never end
    (it runs in a subprocess with a timeout)."""
    for value in ("x" * 10**6, {str(i): i for i in range(10**5)}, "a\nb"):
        text = shown(value)
        assert len(text) <= QUOTED_CHARS and "\n" not in text, text
    assert shown("a\nb") == "'a\\nb'"
    (deep,), _, seconds = read_each([("quoted_deep", [])])
    assert deep.startswith("[[[...], [...], [...], [...], [...], [...], ...], ") and len(deep) == QUOTED_CHARS
    assert seconds < 30
    with pytest.raises(ConfigError) as caught:
        from acoustic_env.config import TrainConfig, from_dict

        from_dict(TrainConfig, {"features": "t", "output": "o", "cv_folds": [[["x"] * 1000] * 1000] * 1000})
    assert str(caught.value).startswith("cv_folds: must be an integer, got [[[") and len(str(caught.value)) < 200


def test_a_small_file_under_a_large_limit_is_read_without_a_buffer_of_the_limit(tmp_path):
    """A model's 1-kB file under its 2-GiB bound: read in chunks, so the process never asks for the bound at once
    (one read of limit + 1 bytes allocated it whole: the windows' hour-in-bounded-memory test saw 64 MiB)."""
    import tracemalloc

    from acoustic_env.bounded import read_bytes

    small = tmp_path / "model.json"
    small.write_bytes(b"{}" * 512)
    tracemalloc.start()
    try:
        assert read_bytes(str(small), "model", 2 * 2**30, "a model file") == b"{}" * 512
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.0f} MiB"
