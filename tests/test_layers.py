"""The floors import downward only, and Ray lives in one of them, started one way.

:data:`FLOORS` is the one statement of the order (``docs/design.md`` draws the same list, checked below):
a package may import the packages on the floors below its own, never one beside or above it. The import
checks read the source with ``ast``, so a lazy import inside a function counts as much as one at the top
of a module.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import parse_python

PACKAGE = Path(__file__).resolve().parents[1] / "acoustic_env"
#: The top-level packages and modules of acoustic_env, ground floor first. The package root
#: (``acoustic_env/__init__.py``: the lazy public API and ``__version__``) stands outside the floors.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "registry", "csv_writer"),
    ("storage",),
    ("bounded",),
    ("vocabulary",),
    ("embedders",),
    ("candidates", "feature_groups"),
    ("config",),
    ("table",),
    ("layout", "features"),
    ("audio",),
    ("audioset", "learn"),
    ("labels", "pages"),
    ("recipes", "distributed"),
    ("jobs",),
    ("web", "demo"),
    ("api",),
    ("cli",),
)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``from acoustic_env import jobs`` counts as ``acoustic_env.jobs``)."""
    out: set[str] = set()
    for node in ast.walk(parse_python(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def sources(*parts: str) -> list[Path]:
    """The source files of packages or modules of acoustic_env, by name (``learn``, ``table``)."""
    files = []
    for part in parts:
        module = PACKAGE / f"{part}.py"
        assert module.is_file() or (PACKAGE / part).is_dir(), f"acoustic_env has no {part}"
        files += [module] if module.is_file() else sorted((PACKAGE / part).rglob("*.py"))
    return files


def offenders(files: list[Path], packages: tuple[str, ...]) -> dict[str, list[str]]:
    """{file: [imported modules inside one of ``packages``]} for the files that import any."""
    found = {}
    for f in files:
        bad = sorted(m for m in imported_modules(f) if any(m == p or m.startswith(p + ".") for p in packages))
        if bad:
            found[f.as_posix().removeprefix(PACKAGE.parent.as_posix() + "/")] = bad
    return found


def test_imported_modules_sees_every_form(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import ray.data\nfrom acoustic_env.jobs import train\n\ndef f():\n    from ray import tune\n")
    assert offenders([src], ("ray",)) and offenders([src], ("acoustic_env.jobs.train",))
    assert not offenders([src], ("acoustic_env.jobs.audit", "raytracing"))


def test_only_distributed_imports_ray():
    outside = [f for f in PACKAGE.rglob("*.py") if (PACKAGE / "distributed") not in f.parents]
    assert offenders(outside, ("ray",)) == {}
    assert offenders(sources("distributed"), ("ray",))  # the check would see Ray where it is


def floor_of(module: str) -> int | None:
    """The floor of ``acoustic_env.<room>...``, or None for the package root and modules outside acoustic_env."""
    parts = module.split(".")
    if parts[0] != "acoustic_env" or len(parts) < 2:
        return None
    return next((i for i, floor in enumerate(FLOORS) if parts[1] in floor), None)


def upward_imports(package: Path = PACKAGE) -> dict[str, list[str]]:
    """{file: [modules it imports on its own floor (another room) or above]} for every source file of ``package``."""
    found = {}
    for f in sorted(package.rglob("*.py")):
        room = f.relative_to(package).parts[0].removesuffix(".py")
        if room == "__init__":
            continue
        own = floor_of(f"acoustic_env.{room}")
        assert own is not None, f"{room} stands on no floor: add it to FLOORS (and to docs/design.md)"
        bad = sorted(m for m in imported_modules(f) if (up := floor_of(m)) is not None and up >= own
                     and m.split(".")[1] != room)
        if bad:
            found[f.relative_to(package).as_posix()] = bad
    return found


def test_every_import_points_down_the_floors():
    assert upward_imports() == {}


def test_an_upward_or_sideways_import_is_found(tmp_path):
    """The check itself: a ground-floor module importing a job, and a room importing its neighbour on the same floor."""
    for room in ("storage", "layout", "features"):
        (tmp_path / room).mkdir()
    (tmp_path / "storage" / "fs.py").write_text("def f():\n    from acoustic_env.jobs import train\n")
    (tmp_path / "layout" / "parts.py").write_text("from acoustic_env.features import cpu_features\n")
    (tmp_path / "features" / "ok.py").write_text("from acoustic_env.table import embedding_column\nimport numpy\n")
    assert upward_imports(tmp_path) == {"storage/fs.py": ["acoustic_env.jobs", "acoustic_env.jobs.train"],
                                         "layout/parts.py": ["acoustic_env.features", "acoustic_env.features.cpu_features"]}


def test_the_design_page_draws_the_same_floors():
    """docs/design.md's floor list (a fenced block under "## Layers", top floor first) is FLOORS."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text()
    block = re.search(r"## Layers\n.*?```\n(.*?)```", text, re.S).group(1)
    drawn = [tuple(re.findall(r"\b(\w+)[/.]", line.split(":", 1)[1].split("—")[0])) for line in block.splitlines()
             if re.match(r"\s*\d+\s*:", line)]
    assert drawn == list(reversed(FLOORS))


def test_learning_never_decodes_audio():
    """learn/ scores features; decoding and featurising audio is the jobs' (predict, serve): the model
    artifact stays loadable without the audio stack. Only the clip-list reader (AudioSet's split) is shared."""
    used = {m for found in offenders(sources("learn"), ("acoustic_env.audio",)).values() for m in found}
    assert used <= {"acoustic_env.audio.manifest", "acoustic_env.audio.manifest.read_audioset_csv"}


def test_the_modules_of_ray_datas_tasks_import_neither_torch_nor_sklearn():
    """A Ray worker imports the module of the function it runs: the extract's stages and the CNN's image decoding
    need numpy and Arrow only, and torch would cost each such worker a second and a half of CPU and a few hundred MB
    (the decode tasks of a streamed CNN training did import it, through learn.fit and learn.spectro)."""
    modules = ["acoustic_env.distributed.pipeline", "acoustic_env.audio.stages", "acoustic_env.distributed.images"]
    code = ("import sys, acoustic_env.distributed\n" + "".join(f"import {m}\n" for m in modules)
            + "print([m for m in ('torch', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


# --- one way to start Ray ------------------------------------------------------------

def test_map_tasks_runs_each_item_with_the_shared_values(ray_session):
    from acoustic_env.distributed.fanout import map_tasks

    assert map_tasks(lambda a, b: divmod(a, b), [7, 9, 11], b=4) == [(1, 3), (2, 1), (2, 3)]


@pytest.mark.parametrize("given,stated", [({}, "token"), ({"RAY_AUTH_MODE": "disabled"}, "disabled"),
                                          ({"RAY_ADDRESS": "http://10.0.0.1:8265"}, None),
                                          ({"RAY_ADDRESS": "10.0.0.1:6379", "RAY_AUTH_MODE": "token"}, "token")])
def test_token_mode_stated_for_a_local_instance_only(given, stated):
    """A new local instance gets token mode stated (no warning); a job that `ray job submit` started
    (RAY_ADDRESS) keeps its node's mode: on a cluster without token authentication, none."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    out = subprocess.run([sys.executable, "-c", "import os, acoustic_env.distributed; print(os.environ.get('RAY_AUTH_MODE'))"],
                         env={**env, **given}, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == str(stated)


def test_ray_private_modules_only_where_the_docstring_names_the_reason():
    """Ray's private modules break on Ray upgrades: the package uses public APIs, except the two
    places whose docstrings say why and which test fails loudly when they move."""
    private = {}
    for f in sources("distributed", "jobs", "learn", "audio", "features", "embedders"):
        found = sorted(m for m in imported_modules(f) if m.startswith("ray.") and "._" in m or m.startswith("ray._"))
        if found:
            private[f.relative_to(PACKAGE).as_posix()] = found
    assert set(private) == {"distributed/pipeline.py", "distributed/session.py"}, private
    assert all(m.startswith("ray.data._internal") for m in private["distributed/pipeline.py"])
    assert private["distributed/session.py"] == ["ray._private", "ray._private.worker"]
    assert "test_the_input_dataset_equals_ray_datas_own_from_arrow_refs" in (PACKAGE / "distributed" / "pipeline.py").read_text()
    assert "test_the_private_names_the_package_uses_exist" in (PACKAGE / "distributed" / "session.py").read_text()


def test_the_private_names_the_package_uses_exist():
    """``session._leave`` clears ``ray._private.worker._global_node`` so that ``ray.shutdown`` leaves the processes
    to the quick exit; were the name gone, the command would fall back to Ray's slower graceful shutdown unseen."""
    from ray._private import worker

    assert hasattr(worker, "_global_node")


def _package_imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, at import time or inside a function (a lazy import is a cycle
    waiting for a caller too): ``from acoustic_env.cli import console`` is ``acoustic_env.cli.console`` where
    that is a module, else ``acoustic_env.cli``."""
    out = set()
    for node in ast.walk(parse_python(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                       for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out & modules


def test_the_package_has_no_import_cycle():
    """No module imports one that imports it back, directly or through others, at import time or lazily."""
    modules = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = f
    graph = {name: _package_imports(f, set(modules)) - {name} for name, f in modules.items()}
    import graphlib

    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_no_undefined_or_unused_name_in_the_package():
    """pyflakes finds nothing: a name used but never imported fails here, not in a user's first run."""
    out = subprocess.run([sys.executable, "-m", "pyflakes", str(PACKAGE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and not out.stdout, out.stdout + out.stderr


def test_rays_printing_threads_write_to_the_log_not_the_console(tmp_path):
    """What Ray's driver threads print (a node marked dead, a worker killed: the GCS's messages, printed
    whatever log_to_driver says) goes to the log file under the quiet console, masked; the tool's own lines
    stay on the console. The thread names are Ray's: this fails when a Ray upgrade renames them."""
    import inspect

    import ray._private.worker

    from acoustic_env.distributed.session import RAY_PRINT_THREADS

    source = inspect.getsource(ray._private.worker)
    assert all(f'name="{name}"' in source for name in RAY_PRINT_THREADS)
    log = tmp_path / "job.log"
    code = textwrap.dedent(f"""
        import sys, threading
        from acoustic_env.distributed.session import quiet_console
        quiet_console({str(log)!r})
        print("own line")
        t = threading.Thread(target=print, args=("(raylet) node marked dead https://u:PWSECRET@h/x",),
                             name="ray_listen_error_messages")
        t.start(); t.join()
        print("own line on stderr", file=sys.stderr)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "own line\n" and r.stderr == "own line on stderr\n", (r.stdout, r.stderr)
    text = log.read_text()
    assert "(raylet) node marked dead https://***@h/x" in text and "PWSECRET" not in text


# --- one reader of a saved model ---------------------------------------------------------

ARTIFACT = "learn/artifact.py"


def model_file_readers(package: Path = PACKAGE) -> dict[str, list[str]]:
    """{file: [what it does]} for every module but ``learn/artifact.py`` that names ``model.json`` in its code
    (a docstring may mention it) or reads a model's parsed file (``.meta``) instead of its properties."""
    found = {}
    for f in sorted(package.rglob("*.py")):
        if f.relative_to(package).as_posix() == ARTIFACT:
            continue
        tree = parse_python(f.read_text(), str(f))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        bad = sorted({"names model.json" for node in ast.walk(tree) if isinstance(node, ast.Constant)
                      and isinstance(node.value, str) and "model.json" in node.value and id(node) not in docstrings}
                     | {"reads .meta" for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "meta"})
        if bad:
            found[f.relative_to(package).as_posix()] = bad
    return found


def test_only_the_artifact_module_reads_a_saved_model():
    """Every fact of a saved model is read through learn/artifact.py (``load_model``, ``describe``): one place
    knows the file's fields."""
    assert (PACKAGE / ARTIFACT).is_file() and model_file_readers() == {}


def test_a_module_reading_model_json_itself_is_found(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "peek.py").write_text(
        '"""Mentions model.json in its docstring only."""\nimport json\n\n\n'
        'def task(uri):\n    return json.loads(open(f"{uri}/model.json").read())["task"]\n')
    (tmp_path / "jobs" / "raw.py").write_text("def kind(model):\n    return model.meta['task']['kind']\n")
    (tmp_path / "jobs" / "fine.py").write_text('"""Reads model.json through the artifact."""\n\n\n'
                                               "def kind(model):\n    return model.kind\n")
    assert model_file_readers(tmp_path) == {"jobs/peek.py": ["names model.json"], "jobs/raw.py": ["reads .meta"]}
