"""``make mutate-stale`` (``tests/mutation.py --stale``): a passing run records its module's source, and a module
changed since (or never passed) is listed, so that mutation runs cannot decay unseen; and a run's mutants leave this
machine's files alone."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import mutation


def test_a_passing_run_stamps_its_source_and_a_later_change_makes_the_module_stale(tmp_path, monkeypatch, capsys):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("y = 2\n")
    explained = tmp_path / "mutants"
    explained.mkdir()
    (explained / "pkg.a.toml").write_text('# why\n[harmless]\nx_f__mutmut_1 = "same"\n')
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "EXPLAINED", explained)
    monkeypatch.setattr(mutation, "MODULES", {"pkg/a.py": [], "pkg/b.py": []})
    assert mutation.stale() == ["pkg/a.py", "pkg/b.py"]  # no passing run recorded yet
    mutation.stamp("pkg/a.py", "0" * 64)  # a source other than the file's now: still stale
    assert mutation.stale() == ["pkg/a.py", "pkg/b.py"]
    mutation.stamp("pkg/a.py", mutation.source_hash("pkg/a.py"))  # again: one [passed] table, the explanations kept
    toml = tomllib.loads((explained / "pkg.a.toml").read_text())
    assert toml["harmless"] == {"x_f__mutmut_1": "same"} and set(toml["passed"]) == {"source_sha256"}
    mutation.stamp("pkg/b.py", mutation.source_hash("pkg/b.py"))  # no toml yet: one is written
    assert mutation.stale() == [] and mutation.main(["--stale"]) == 0
    assert "every module of MODULES (2) is as its last passing run left it" in capsys.readouterr().out
    (tmp_path / "pkg" / "b.py").write_text("y = 3\n")
    assert mutation.stale() == ["pkg/b.py"] and mutation.main(["--stale"]) == 1
    assert capsys.readouterr().out == "pkg/b.py: changed since its last passing run (or none recorded)\n"


def test_explanations_left_behind_by_a_moved_module_are_named(tmp_path, monkeypatch, capsys):
    """A module that moved keeps no explanations: its old file is named by ``--stale``, and the package's own files
    each name a module of ``MODULES``."""
    assert mutation.orphans() == []  # the real tests/mutants/: every file belongs to a module of MODULES
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "new.py").write_text("x = 1\n")
    explained = tmp_path / "mutants"
    explained.mkdir()
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "EXPLAINED", explained)
    monkeypatch.setattr(mutation, "MODULES", {"pkg/new.py": []})
    mutation.stamp("pkg/new.py", mutation.source_hash("pkg/new.py"))
    (explained / "pkg.old.toml").write_text('[harmless]\nx_f__mutmut_1 = "same"\n')
    assert mutation.orphans() == ["pkg.old.toml"] and mutation.main(["--stale"]) == 1
    assert capsys.readouterr().out == "mutants/pkg.old.toml: names no module of MODULES (moved or renamed? rename it)\n"
    (explained / "pkg.old.toml").unlink()
    assert mutation.main(["--stale"]) == 0


def test_an_explained_mutant_that_ran_out_of_time_is_not_called_stale(tmp_path, monkeypatch):
    """On a loaded machine a harmless mutant can run past its time: the run neither counts it alive nor calls its
    reason stale; a reason whose mutant a test killed is still named."""
    explained = tmp_path / "mutants"
    explained.mkdir()
    (explained / "pkg.a.toml").write_text('[harmless]\nx_f__mutmut_1 = "same"\nx_f__mutmut_2 = "same"\n')
    monkeypatch.setattr(mutation, "EXPLAINED", explained)
    run = {"total": 39, "killed": 37, "survived": 1, "no_tests": 0, "timeout": 1, "suspicious": 0, "skipped": 0,
           "segfault": 0, "alive": ["x_f__mutmut_1"], "timed_out": ["x_f__mutmut_2"]}
    run.update({k: 0 for k in mutation.TESTED if k not in run})
    assert mutation.verdict("pkg/a.py", run) == []
    killed = {**run, "killed": 38, "timeout": 0, "timed_out": []}
    assert mutation.verdict("pkg/a.py", killed) == ["explained but killed or gone (remove them): x_f__mutmut_2"]


def test_the_mutants_model_cache_is_a_copy_inside_the_run_and_the_machines_is_left_alone(tmp_path, monkeypatch):
    """A mutant of the weights' code once wrote into the real model cache: each run's mutants get a copy of it
    inside their own directory, what the tests read is there, and what a mutant writes stays there."""
    machine = tmp_path / "machine"
    machine.mkdir()
    (machine / "model.onnx").write_text("the converted graph")
    monkeypatch.setenv(mutation.CACHE_ENV, str(machine))
    work = tmp_path / "build" / "mutate" / "pkg.a"
    work.mkdir(parents=True)
    mutant = ("import pathlib; from acoustic_env.embedders.weights import resolve_cache_dir; "
              "p = pathlib.Path(resolve_cache_dir()) / 'model.onnx'; print(p.read_text()); p.write_text('damaged')")
    run = subprocess.run([sys.executable, "-c", mutant], env=mutation.environment(work), capture_output=True,
                         text=True, check=True)
    assert run.stdout == "the converted graph\n"  # the machine's file, copied
    assert (machine / "model.onnx").read_text() == "the converted graph"
    assert (work / "model-cache" / "model.onnx").read_text() == "damaged"
