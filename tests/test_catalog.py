"""A command is one JobSpec: a toy declared here, outside the package, gets its flags from its config, a dry run,
the path checks, its summary lines on the command line and a Python API entry (issue 59, parts 3 and 8;
docs/development.md, "Adding a command")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import parse_python

import acoustic_env as ae
from acoustic_env.cli import build_parser, main
from acoustic_env.config import ConfigError, Section, option
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs import catalog
from acoustic_env.jobs.catalog import JobSpec
from acoustic_env.table import read_features
from acoustic_env.vocabulary.tasks import load_task


@dataclass(frozen=True)
class CountConfig(Section):
    """How many clips of a feature table have each class of a task."""

    features: str = option(help="feature table", role="table")
    output: str = option(help="where counts.json goes", role="output")
    task: str = option("urban_natural", help="the task whose classes are counted")
    top: int = option(2, ge=1, help="the most common classes counted")


@dataclass(frozen=True)
class Counted:
    counts: dict[str, int]
    path: str


def count(cfg: CountConfig) -> Counted:
    task = load_task(cfg.task)
    y = read_features(cfg.features, task=task).y
    counts = {name: int((y == k).sum()) for k, name in enumerate(task.class_names)}
    counts = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:cfg.top])  # ties keep the task's order
    path = Path(cfg.output) / "counts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(counts))
    return Counted(counts, str(path))


COUNT = JobSpec("count", "count a feature table's clips per class (a test's toy)", CountConfig, run=count,
                lines=lambda r: [f"count: {', '.join(f'{k}={v}' for k, v in r.counts.items())} -> {r.path}"],
                plan=lambda cfg: {"lines": [f"count would read {cfg.features} for task {cfg.task}"]},
                usage="%(prog)s --features TABLE --output DIR [options]")


@pytest.fixture
def toy():
    catalog.register(COUNT)
    yield COUNT
    catalog.unregister(COUNT.name)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("count")
    return write_features(synthetic_features(20, seed=2, signals=("raw",)).table, str(root / "t"))


def test_the_toy_runs_on_the_command_line_with_flags_from_its_config(toy, table, tmp_path, capsys):
    assert main(["count", "--features", table, "--output", str(tmp_path / "o")]) == 0
    log, line = capsys.readouterr().out.strip().splitlines()  # the log file, as every job's console says first
    assert log.startswith(f"count: details and Ray's output go to {tmp_path / 'o' / 'logs'}/count-")
    assert line == f"count: urban=10, natural=10 -> {tmp_path / 'o' / 'counts.json'}"
    assert json.loads((tmp_path / "o" / "counts.json").read_text()) == {"urban": 10, "natural": 10}
    assert main(["count", "--features", table, "--output", str(tmp_path / "p"), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == f"count would read {table} for task urban_natural"
    assert not (tmp_path / "p").exists()  # the dry run starts nothing
    helped = build_parser()._subparsers._group_actions[0].choices["count"].format_help()
    assert "--top N" in helped and "the most common classes counted (default: 2)" in helped and "--dry-run" in helped


def test_the_toy_refuses_a_bad_value_and_an_output_inside_its_input_in_one_line(toy, table, tmp_path, capsys):
    assert main(["count", "--features", table, "--output", str(tmp_path / "o"), "--top", "0"]) == 2
    assert capsys.readouterr().err.strip() == "acoustic-env: error: top: must be an integer >= 1, got 0"
    assert main(["count", "--features", table, "--output", f"{table}/inside"]) == 2  # preflight, from the roles
    assert "lies inside the features this job reads" in capsys.readouterr().err


def test_the_toy_runs_through_the_api_and_an_unknown_command_is_one_line(toy, table, tmp_path):
    result = ae.run("count", features=table, output=str(tmp_path / "o"), top=1)
    assert result.counts == {"urban": 10}
    with pytest.raises(ConfigError, match=r"^top: must be an integer >= 1, got 0$"):
        ae.run("count", features=table, output=str(tmp_path / "o"), top=0)
    with pytest.raises(ConfigError, match=r"^command: unknown command 'counts'; choose from \[.*'count'\]"):
        ae.run("counts")


def test_the_catalogue_holds_the_four_jobs_and_building_the_parser_imports_none_of_them():
    assert [s.name for s in catalog.specs()][:4] == ["extract", "train", "audit", "annotate"]
    assert catalog.get("train").config is ae.TrainConfig


def test_a_commands_lines_never_show_a_uris_credentials(toy, table, tmp_path, capsys):
    """What a command prints quotes URIs (its inputs and outputs): their user-info and secret query values are ***."""
    leaky = JobSpec("leaky", "prints a URI with its secret (a test's toy)", CountConfig, run=count,
                    lines=lambda r: ["wrote https://ann:hunter2@store.example/counts.json?X-Amz-Signature=abc123"],
                    plan=COUNT.plan)
    catalog.register(leaky)
    try:
        assert main(["leaky", "--features", table, "--output", str(tmp_path / "o")]) == 0
    finally:
        catalog.unregister("leaky")
    out = capsys.readouterr().out
    assert "hunter2" not in out and "abc123" not in out and "https://***@store.example/counts.json" in out


# --- a command in a group, with a positional word and no dry run; every flag of the table generated -------------

@dataclass(frozen=True)
class TallyConfig(Section):
    """How many clips of a feature table have each class (a grouped toy: ``acoustic-env toys tally TABLE``)."""

    features: str = option(positional=True, role="table", help="feature table")
    output: str = option(help="where counts.json goes", role="output")
    task: str = option("urban_natural", help="the task whose classes are counted")
    top: int = option(2, ge=1, help="the most common classes counted")


TALLY = JobSpec("toys tally", "count a feature table's clips per class (a grouped test toy)", TallyConfig,
                run=lambda cfg: count(CountConfig(cfg.features, cfg.output, cfg.task, cfg.top)), lines=COUNT.lines,
                usage="%(prog)s FEATURES --output DIR [options]", console="never")


@pytest.fixture
def grouped_toy():
    catalog.register(TALLY)
    yield TALLY
    catalog.unregister(TALLY.name)


def _subparsers(parser) -> dict:
    return parser._subparsers._group_actions[0].choices


def test_a_grouped_toy_with_a_positional_word_runs_on_the_command_line_and_the_api(grouped_toy, table, tmp_path,
                                                                                  capsys):
    assert main(["toys", "tally", table, "--output", str(tmp_path / "o"), "--top", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"count: urban=10 -> {tmp_path / 'o' / 'counts.json'}"  # no log line
    assert ae.run("toys tally", features=table, output=str(tmp_path / "p")).counts == {"urban": 10, "natural": 10}
    helped = _subparsers(_subparsers(build_parser())["toys"])["tally"].format_help()
    assert "features" in helped and "feature table (required)" in helped and "--dry-run" not in helped
    with pytest.raises(SystemExit):  # the word is required, as any positional
        main(["toys", "tally", "--output", str(tmp_path / "q")])
    assert "the following arguments are required: features" in capsys.readouterr().err
    assert main(["toys", "tally", table, "--output", f"{table}/inside"]) == 2  # preflight, from the roles
    assert "lies inside the features this job reads" in capsys.readouterr().err


def _commands(parser, prefix: str = ""):
    """(name, parser) of every command of the ``acoustic-env`` parser, groups' commands as ``group name``."""
    for name, p in _subparsers(parser).items():
        if p._subparsers is not None:
            yield from _commands(p, f"{prefix}{name} ")
        else:
            yield prefix + name, p


def test_every_flag_of_a_catalogued_command_is_generated_from_its_config(grouped_toy):
    """No flag written by hand on a command of the table: its options are its config's fields, ``--config`` and
    ``--dry-run`` (where it has a plan), so a hand-written flag that repeats a field cannot drift back."""
    from acoustic_env.config.flags import _flags

    seen = set()
    for name, p in _commands(build_parser()):
        try:
            spec = catalog.get(name)
        except ValueError:
            continue
        seen.add(name)
        flags = list(_flags(spec.config))
        given = sorted(a.dest for a in p._actions if a.dest not in ("help", "config", "dry_run"))
        assert given == sorted(".".join(f.path) for f in flags), f"{name}: a flag not generated from its config"
        assert ("--dry-run" in p._option_string_actions) == (spec.plan is not None), name
    assert seen == {s.name for s in catalog.specs()}  # every command of the table is on the parser
    assert {"export", "search", "predict", "audit-review", "audit-estimate", "serve", "demo", "audioset sample",
            "audioset fetch", "audioset rescore", "audioset frames", "labels apply", "toys tally"} <= seen


def test_the_only_hand_written_flags_are_acoustic_envs_own_each_said_so():
    """Every command's options come from its config (the catalogue): the command line writes by hand only
    ``--version`` and ``-v``, which are no job's, each under a comment saying so; a flag written by hand on a
    command would repeat, and drift from, a config field."""
    import ast

    found = []
    for path in sorted((Path(ae.__file__).parent / "cli").glob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(parse_python(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
                said = "not a job option" in lines[node.lineno - 2]  # the comment line above the call
                found.append((path.name, flags[0] if flags else ast.unparse(node), said))
    assert found == [("__init__.py", "--version", True), ("__init__.py", "-v", True)], found


@pytest.mark.parametrize("argv, data, printed", [
    (["duplicates", "T"], {"chunks": True, "output": "pairs.csv"},
     "duplicates: would compare the clips of T chunk by chunk (at least 50%"),
    (["recipe", "esc50", "ROOT", "OUT"], {"esc10": True}, "recipe esc50: would read ROOT/meta/esc50.csv\n"
                                                          "  and write OUT/esc10.csv"),
    (["recipe", "fsd50k", "ROOT", "OUT"], {"from_tags": True}, "ROOT/FSD50K.metadata/eval_clips_info_FSD50K.json"),
    (["models", "fetch"], {"names": ["panns"], "weights_cache": "CACHE"}, "models fetch: would fetch panns into "),
    (["models", "convert"], {"handles": {"vggish": "SAVED"}}, "models convert: would convert vggish from SAVED"),
])
def test_duplicates_recipe_and_models_take_a_config_file_and_a_dry_run(argv, data, printed, tmp_path, capsys,
                                                                       monkeypatch):
    """The three commands that wrote their flags by hand are catalogued jobs: a ``--config`` file's fields reach the
    job (here: its dry run, which reads and writes nothing), and a bad value in it is one line naming the field."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert main([*argv, "--config", "c.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert printed in out, out
    assert not [p.name for p in tmp_path.iterdir() if p.name != "c.yaml"]  # nothing written
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**data, "nope": 1}))
    assert main([*argv, "--config", "c.yaml", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("acoustic-env: error: nope: unknown field")


def test_models_list_exits_1_on_a_bad_file_and_runs_through_the_api(tmp_path, capsys):
    """``models list`` as a catalogued job keeps its exit status (``JobSpec.status``): 1 when a file is bad, so a
    script checking the cache sees it; unhashed, the same file is only present. ``ae.run`` returns the rows."""
    from acoustic_env.embedders import panns

    (tmp_path / panns.SPEC.weights.filename).write_bytes(b"x" * 100)  # the registry's file, truncated
    assert main(["models", "list", "--weights-cache", str(tmp_path)]) == 1
    assert "panns " in capsys.readouterr().out
    assert main(["models", "list", "--weights-cache", str(tmp_path), "--no-verify"]) == 0
    rows = {r["name"]: r["status"] for r in ae.run("models list", weights_cache=str(tmp_path), verify=False).rows}
    assert rows["panns"] == "present" and rows["vggish"] == "missing"
