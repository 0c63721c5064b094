"""The soak benchmark at smoke size: 60 clips, good and every bad kind, one SIGKILL of the
driver mid-run, then a resume; every clip exactly once with its expected error type.

None of the killed driver's Ray processes (GCS, raylet, its agents) may outlive it by more than
``ORPHANS_GONE_S`` (``distributed/reaper.py``).

The full run (10,000 clips, plus a Ray worker kill) is ``python benchmarks/soak.py`` and its
numbers are in benchmarks/RESULTS.md. This test runs the same code, so the benchmark cannot rot. The driver's
memory is the benchmark's to judge: over 60 clips its RSS still grows with Ray's and the libraries' lazy
imports, by more the slower the machine (162 MB once on a loaded one), so no figure of it here could fail only
on a leak.
Timeouts are generous (a shared 2-core machine starts Ray slowly); after the kill the benchmark
resumes once none of the killed driver's processes is left (they are the only writers; one that has to be
ended after 3 minutes leaves it waiting for features/ to stop changing first).
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import soak  # noqa: E402 - benchmarks/soak.py

#: enough for every bad kind (13 bad clips), good clips among them, and a kill that lands mid-run (at 30 % of the
#: 29 valid rows: about a dozen rows in features/ when the driver dies, the rest left for the resume)
SMOKE_CLIPS = 40
#: seconds within which every process of a SIGKILLed driver's local Ray instance is gone (the reaper's
#: grace and SIGTERM-to-SIGKILL wait, with room for a loaded machine; Ray's agents alone lived 61-68 s)
ORPHANS_GONE_S = 20.0


@pytest.mark.slow
def test_soak_smoke_every_clip_once_after_a_driver_kill(tmp_path):
    res = soak.soak(SMOKE_CLIPS, tmp_path, batch_size=2, write_batch_size=4, kill_driver_at=0.3, worker_kill=False,
                    extra_args=["--signals", "raw", "--in-process-max", "0"], timeout_s=900)  # the resume on Ray too
    first, *rest = res["runs"]
    v = res["verify"]
    assert first["killed"].startswith("driver") and first["rc"] == -9, first
    # the killed driver's local Ray instance, agents included, was up, and none of it outlived the driver long
    programs = {title.split()[0] for title in first["at_kill"] if title}
    assert {"raylet", "gcs_server", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= programs, first["at_kill"]
    assert not first["orphans_left"] and first["orphans_lived_s"] < ORPHANS_GONE_S, first
    assert 0 < res["done_when_driver_killed"] < v["features"], "the kill did not land mid-run"
    # the resume completes (a try that Ray could not start on a loaded machine is repeated, recorded)
    assert rest and rest[-1]["rc"] == 0, [r["stderr_tail"] for r in rest]
    assert v["n_problems"] == 0, v["problems"]
    assert v["features"] + v["errors"] == v["expected"] == SMOKE_CLIPS  # a duplicate keeps a row of its own id
    # every bad kind was present and ended as its type (verify() compares each clip with its expectation)
    assert set(v["by_kind"]) == {"good", *soak.BAD_KINDS}
    assert res["last_record_status"] == "completed"


class _Listed:
    """What ``soak._title`` reads of a process (``psutil.Process``'s cmdline and name)."""

    def __init__(self, words: list[str]) -> None:
        self.words = words

    def cmdline(self) -> list[str]:
        return self.words

    def name(self) -> str:
        return "kthread"


def test_a_process_title_names_its_program_however_deep_the_checkout():
    # a CI checkout's path once pushed "gcs_server" past the title's 80-character cut
    deep = "/check/a/checkout/path/well/past/eighty/characters/main/.venv/lib/python3.11/site-packages/ray/core/src/ray"
    assert soak._title(_Listed([f"{deep}/gcs/gcs_server", "--log_dir=/tmp/x"])) == "gcs_server"
    assert soak._title(_Listed([f"{deep}/raylet/raylet", "--node_ip_address=127.0.0.1"])) == "raylet"
    assert soak._title(_Listed(["ray::DashboardAgent", ""])) == "ray::DashboardAgent"
    assert soak._title(_Listed([f"{deep}/../../bin/python", "-m", "acoustic_env.cli", "extract", "--in", "x"])) == (
        "python -m acoustic_env.cli extract")
    assert soak._title(_Listed([])) == "kthread"
