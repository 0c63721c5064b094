"""The labels commands' console lines name object-storage locations without their credentials (``storage.redact``),
as every other command's do."""

from __future__ import annotations

from types import SimpleNamespace

from acoustic_env.jobs.label_runners import apply_lines
from acoustic_env.jobs.results import Done

SECRET = "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket"


def test_apply_names_its_list_conflicts_and_table_without_the_credentials():
    current = SimpleNamespace(decisions={"a": SimpleNamespace(reviewed=True)}, conflicts={})
    config = SimpleNamespace(output=f"{SECRET}/list.csv", features=f"{SECRET}/table")
    printed = "\n".join(apply_lines(Done((SimpleNamespace(name="urban_natural"), current, f"{SECRET}/conflicts.csv"),
                                        config)))
    assert "wJalrXUtnFEMI" not in printed and "AKIAEXAMPLE" not in printed
    assert "bucket/list.csv" in printed and "bucket/table" in printed
