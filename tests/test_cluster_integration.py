"""A real two-node Ray cluster on this machine, S3 on loopback, the jobs of the repository's jobs/ folder submitted.

Head and worker are separate `ray start` processes with their own ports and a custom
resource on the worker; a moto S3 server runs as its own process. Ray runs from a plain
Python installation whose site-packages is the project environment's, like a Ray image's
Python (not a virtual environment). Each job of jobs/ (extract, train, audit, the re-annotation, the soundscape) is submitted by
name, `acoustic-env submit NAME --options '...'` (its job.yaml's entry point and runtime environment, its
config.yaml with the test's paths as flags over it), the windows job by `ray job submit` as docs/cluster.md
shows it; every job runs with cluster/runtime_env.yaml itself: Ray's pip installs the checkout from the job's working directory, offline
(PIP_NO_INDEX: every pinned dependency must already be there, as on the acoustic-env image). The jobs read their
clip list and audio from S3 and write features back to S3; then the worker node is
killed in the middle of an extract and the job must still end with every clip exactly
once; a windows job (`annotate --windows`, every window on Ray) runs across both nodes and must give
the table scored in the test's own process. Everything is started with a marker in its environment and torn down by that marker,
so the test never touches another Ray instance on the machine (`ray stop` would).

Token authentication is set up as cluster/README.md tells an operator of `ray up`: on the
operator's machine `ray get-auth-token --generate` writes ~/.ray/auth_token, file_mounts copy
it to the same path on the head and on every worker, and every node starts with
RAY_AUTH_MODE=token; the operator submits with that mode and the same file. Each of the three
(operator, head, worker) has a HOME of its own, made here and empty at first, so nothing comes
from the HOME the tests run under.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from conftest import REPO, free_port, require

from acoustic_env.demo.synth import generate_demo

pytestmark = pytest.mark.slow  # a two-node cluster: minutes, not seconds

BIN = Path(sys.executable).parent
MARK = "ACOUSTIC_ENV_TEST_CLUSTER"
RUNTIME_ENV = REPO / "cluster" / "runtime_env.yaml"


def plain_python(root: Path) -> str:
    """A Python installation, not a virtual environment, with the project environment's site-packages.

    Ray's pip makes a job's environment a light virtualenv over such a Python (as on a Ray
    image); from inside a virtual environment it would copy the whole environment, gigabytes,
    on every node. Python finds its prefix from where its binary lies, so the binary is copied
    and the standard library linked, entry by entry, with site-packages pointing at the project's.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = root / "lib" / stdlib.name
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (lib / "site-packages").symlink_to(sysconfig.get_paths()["purelib"])
    (root / "bin").mkdir()
    python = root / "bin" / Path(sys._base_executable).name
    shutil.copy2(sys._base_executable, python)
    return str(python)


def _opens_under(pid: int, prefix: str) -> bool:
    """Whether process ``pid`` has a file open under ``prefix`` (its Ray session's logs, sockets, spill)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                return True
        except OSError:
            pass
    return False


def marked(value: str, root: Path | None = None) -> list[psutil.Process]:
    """The processes whose environment holds ``MARK=<value...>``, or (``root``) with a file open under ``root``.

    The environment is read from ``/proc/<pid>/environ`` itself, yet a Ray process that retitles itself
    (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``, ``ray::IDLE``) overwrites the start of that block, and the
    marker with it when it lies there; psutil's ``environ()`` also stops at the first empty entry. Missed, the
    head's dashboard agent outlived the module and spun a core for two minutes after its GCS was gone. Every
    process of the cluster keeps its session's logs open under the cluster's own temporary directory.
    """
    needle = f"{MARK}={value}".encode()
    prefix = f"{root}/" if root else None
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():  # this test process starts the cluster's commands, but is not one of them
            continue
        try:
            with open(f"/proc/{p.pid}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone, or not ours to read
            continue
        if needle in env or (prefix and _opens_under(p.pid, prefix)):
            found.append(p)
    return found


def kill_marked(value: str, root: Path | None = None) -> None:
    procs = marked(value, root)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=20)


class Cluster:
    """Head + one worker node, an S3 server, all on 127.0.0.1 with their own ports."""

    def __init__(self, tmp: Path):
        self.tag = uuid.uuid4().hex[:8]
        self.moto: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="aet-", dir="/tmp"))  # short: Ray's socket paths are limited
        self.gcs_port, self.dash_port, self.s3_port = free_port(), free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
        base = {k: v for k, v in base.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
        self.env = {**base, "RAY_AUTH_MODE": "token", "AWS_ENDPOINT_URL": self.endpoint,
                    "RAY_worker_niceness": os.environ["RAY_worker_niceness"],  # tests/conftest.py's
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "PATH": f"{BIN}:{os.environ['PATH']}", "PIP_NO_INDEX": "1",
                    "PIP_NO_BUILD_ISOLATION": "0"}  # "0": no isolated build env (it would need an index)
        self.ray = [plain_python(self.tmp / "python"), "-m", "ray.scripts.scripts"]
        # the operator's machine (who submits), the head node, the worker node: a HOME each
        self.homes = {role: self.tmp / f"home-{role}" for role in ("submit", "head", "worker")}
        for home in self.homes.values():
            home.mkdir()

    def _run(self, args: list[str], role: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**self.env, MARK: f"{self.tag}-{role}", "HOME": str(self.homes[role])}
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO)

    def make_token(self) -> None:
        """The operator's `ray get-auth-token --generate`, then what `ray up`'s file_mounts do with the file."""
        made = self._run([*self.ray, "get-auth-token", "--generate"], "submit")
        assert made.returncode == 0, made.stderr[-2000:]
        token = self.homes["submit"] / ".ray" / "auth_token"
        assert token.read_text() == made.stdout.strip()
        for node in ("head", "worker"):
            (self.homes[node] / ".ray").mkdir()
            shutil.copy2(token, self.homes[node] / ".ray" / "auth_token")

    def start(self) -> None:
        self.moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)],
                                     env={**self.env, MARK: f"{self.tag}-s3"}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.make_token()
        self._start_node("head", ["--head", f"--port={self.gcs_port}", "--include-dashboard=true",
                                  "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dash_port}",
                                  f"--temp-dir={self.tmp}", f"--ray-client-server-port={free_port()}"])
        self._start_node("worker", [f"--address=127.0.0.1:{self.gcs_port}", '--resources={"accel": 1}'])
        deadline = time.time() + 60
        while time.time() < deadline and not self._s3_up():
            time.sleep(0.5)

    def _start_node(self, role: str, args: list[str]) -> None:
        """`ray start` of one node (1 CPU, ports of its own), tried twice. A raylet on a loaded machine can miss the
        30 s that `ray start` waits for it to register with the GCS ("The current node timed out during startup",
        a fixed wait in Ray 2.60's node.py): once in a fresh clone's suite, whose three processes start their
        longest groups together. What the failed try started is ended first."""
        for _ in range(2):
            nm, om, agent, grpc, rt = (str(free_port()) for _ in range(5))
            started = self._run([*self.ray, "start", *args, "--num-cpus=1", f"--node-manager-port={nm}",
                                 f"--object-manager-port={om}", f"--dashboard-agent-listen-port={agent}",
                                 f"--dashboard-agent-grpc-port={grpc}", f"--runtime-env-agent-port={rt}",
                                 f"--metrics-export-port={free_port()}", "--min-worker-port=0", "--max-worker-port=0",
                                 "--disable-usage-stats"], role)
            if started.returncode == 0:
                return
            kill_marked(f"{self.tag}-{role}")
        raise AssertionError(started.stderr[-3000:])

    def _s3_up(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def s3(self):
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, key="testing", secret="testing")

    def submit_job(self, name: str, *options: str, wait: bool = True) -> str:
        """`acoustic-env submit <name> --no-wait`: the job of jobs/<name>/ with ``options`` over its config file, run
        from the repository's root as a user would; then (``wait``) its status polled until it has ended,
        successfully."""
        out = self._run([str(BIN / "acoustic-env"), "submit", name, f"--address=http://127.0.0.1:{self.dash_port}",
                         "--no-wait", f"--options={shlex.join(options)}"], "submit", timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        job_id = re.search(rf"submit: {name} as ({name}-\w+): ", out.stdout).group(1)
        assert f"jobs/{name}/config.yaml" in out.stdout and "testing" not in out.stdout + out.stderr, out.stdout
        if wait:
            self.wait(job_id)
        return job_id

    def submit(self, command: str, *args: str, wait: bool = True) -> str:
        """`ray job submit --no-wait -- python -m acoustic_env.cli <command> ...`, then (``wait``) its status polled
        until it has ended, successfully.

        A waiting `ray job submit` tails the job's log and returned about 4 s after the job had ended
        (the five waits of this module: a fifth of its time); the REST API answers at once."""
        job_id = f"{command}-{uuid.uuid4().hex[:6]}"
        cmd = [str(BIN / "ray"), "job", "submit", f"--address=http://127.0.0.1:{self.dash_port}",
               f"--submission-id={job_id}", f"--runtime-env={RUNTIME_ENV}", "--no-wait"]  # working_dir "." is REPO
        out = self._run([*cmd, "--", "python", "-m", "acoustic_env.cli", command, *args], "submit", timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        if wait:
            self.wait(job_id)
        return job_id

    def wait(self, job_id: str, timeout: float = 600) -> None:
        """Until a submitted job has ended; it must have succeeded."""
        deadline = time.time() + timeout
        while (status := self.job_status(job_id)) in ("PENDING", "RUNNING") and time.time() < deadline:
            time.sleep(0.25)
        assert status == "SUCCEEDED", (status, self.logs(job_id)[-4000:])

    def _jobs_api(self, path: str) -> dict | list:
        """GET from the job server's REST API (what `ray job status` and `ray job logs` call), with the
        operator's token: a poll every second costs no CLI process (about a CPU-second each)."""
        token = (self.homes["submit"] / ".ray" / "auth_token").read_text().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{self.dash_port}/api/jobs/{path}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60) as answer:
            return json.loads(answer.read())

    def job_status(self, job_id: str) -> str:
        return self._jobs_api(job_id)["status"]  # PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED

    def logs(self, job_id: str) -> str:
        return self._jobs_api(f"{job_id}/logs")["logs"]

    def kill_worker(self) -> None:
        kill_marked(f"{self.tag}-worker")

    def stop(self) -> None:
        """Every process of the cluster ended (a survivor fails the module's teardown), its files removed."""
        kill_marked(self.tag, self.tmp)
        if self.moto is not None:
            self.moto.wait(10)  # reaped: Python warns of a Popen collected while its process runs
        left = []
        for p in marked(self.tag, self.tmp):
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{p.pid} {p.name()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert not left, f"processes of the cluster outlived it: {left}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require(shutil.which("moto_server", path=str(BIN)), "moto[server] (a test dependency) is not installed")
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def s3_clip_ids(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    ids = []
    for part in fs.glob(f"{prefix}/features/*.parquet"):
        ids += pq.read_table(io.BytesIO(fs.cat_file(part)), columns=["clip_id"])["clip_id"].to_pylist()
    return ids


def upload_demo(cluster: Cluster, tmp: Path, name: str, n: int, seed: int):
    fs = cluster.s3()
    if not fs.exists("ae-in"):
        fs.mkdir("ae-in")
        fs.mkdir("ae-out")
    demo = generate_demo(tmp / name, n_clips=n, seed=seed, duration_s=2.0, n_broken=2)
    fs.put(str(demo.audio_dir) + "/", f"ae-in/{name}/audio/", recursive=True)
    fs.put(str(demo.clips_csv), f"ae-in/{name}/clips.csv")
    return demo, fs


def test_the_job_server_wants_the_token(cluster, tmp_path):
    """Token authentication is really on: without the token (a HOME without ~/.ray/auth_token) the job server
    refuses `ray job list`, and its REST API refuses a request without the token or with a wrong one; with the
    operator's token it answers (the other tests submit with it, through `ray job submit`)."""
    cmd = [str(BIN / "ray"), "job", "list", f"--address=http://127.0.0.1:{cluster.dash_port}"]
    env = {**cluster.env, "HOME": str(tmp_path)}
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert refused.returncode != 0 and "auth" in (refused.stdout + refused.stderr).lower(), refused.stderr[-2000:]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{cluster.dash_port}/api/jobs/",
                                                          headers=headers), timeout=60)
        assert answer.value.code in (401, 403), headers
    assert isinstance(cluster._jobs_api(""), list)  # the job list, with the operator's token


def test_submitted_extract_against_s3(cluster, tmp_path):
    demo, fs = upload_demo(cluster, tmp_path, "small", 8, seed=21)
    # the embedder must land on the node with the stand-in accelerator: the head has none of it
    job = cluster.submit_job("extract", "--manifest", "s3://ae-in/small/clips.csv", "--audio-root",
                         "s3://ae-in/small/audio", "--output", "s3://ae-out/small", "--no-progress",
                         "--embedders", "vggish", "--allow-random-weights", "--accelerator-resource", "accel")
    ids = s3_clip_ids(fs, "ae-out/small")
    assert len(ids) == len(set(ids)) == demo.n_good, cluster.logs(job)[-3000:]
    runs = fs.glob("ae-out/small/runs/*.json")
    record = json.loads(fs.cat_file(runs[0]))
    assert record["counts"]["failed"] == demo.n_broken and record["resources"]["max_actors"] >= 1
    assert record["resources"]["embed_on_accelerator"] and record["resources"]["embed_resources"]["accel"] == 1.0
    assert record["weights"] == {"vggish": "random"}
    assert "testing" not in json.dumps(record), "no credentials in the run record"
    assert "testing" not in cluster.logs(job)


def test_worker_node_lost_mid_extract(cluster, tmp_path):
    demo, fs = upload_demo(cluster, tmp_path, "big", 24, seed=22)
    args = ("--manifest", "s3://ae-in/big/clips.csv", "--audio-root", "s3://ae-in/big/audio",
            "--output", "s3://ae-out/big", "--batch-size", "1", "--write-batch-size", "1", "--no-progress")
    job = cluster.submit_job("extract", *args, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and len(s3_clip_ids(fs, "ae-out/big")) < 3:
        assert cluster.job_status(job) in ("PENDING", "RUNNING"), cluster.logs(job)[-3000:]
        time.sleep(0.5)
    cluster.kill_worker()
    # Ray retries the lost node's tasks and restarts its actors on the head: the job itself succeeds.
    cluster.wait(job, timeout=deadline - time.time())
    ids = s3_clip_ids(fs, "ae-out/big")
    assert len(ids) == len(set(ids)) == demo.n_good, cluster.logs(job)[-3000:]
    errors = fs.glob("ae-out/big/errors/*.parquet")
    err_ids = [i for p in errors for i in pq.read_table(io.BytesIO(fs.cat_file(p)))["clip_id"].to_pylist()]
    assert len(err_ids) == demo.n_broken


def test_submitted_train_and_audit_against_s3(cluster, tmp_path):
    """Train and audit read the features that the extract jobs above left in S3, and write back to S3; the two
    jobs run on the cluster at once, as two users' jobs would. What they learn is not looked at here: the fewest
    folds, no search and one audit model (5 folds, a nested search and a choice among three models took 50-100 s)."""
    fs = cluster.s3()
    if not fs.glob("ae-out/big/features/*.parquet"):
        pytest.skip("needs the extract of test_worker_node_lost_mid_extract")
    train = cluster.submit_job("train", "--features", "s3://ae-out/big", "--output", "s3://ae-out/train", "--trials", "0",
                           "--baselines", "", "--no-ablations", "--shap-samples", "0", "--max-rounds", "3",
                           "--cv-folds", "2", "--tuning-trials", "1", "--no-progress", wait=False)
    cluster.submit_job("audit", "--features", "s3://ae-out/big", "--output", "s3://ae-out/audit",
                   "--review-top", "4", "--random-sample", "4", "--folds", "2", "--classifier", "logreg")
    cluster.wait(train)
    fs.invalidate_cache()
    for key in ("ae-out/train/model/model.json", "ae-out/train/model/weights.pt", "ae-out/train/report/index.html",
                "ae-out/audit/audit.parquet", "ae-out/audit/summary.json", "ae-out/audit/review/index.html"):
        assert fs.exists(key), key
    audit = pq.read_table(io.BytesIO(fs.cat_file("ae-out/audit/audit.parquet")))
    assert audit.num_rows == len(s3_clip_ids(fs, "ae-out/big"))


def test_windows_across_both_nodes_give_the_in_process_table(cluster, tmp_path):
    """`annotate --windows` with every window on Ray: spans of one window, one actor per node (each has one CPU),
    reading the recordings from S3 and writing each span's part there; the window table equals the one
    scored in this process from local copies of the same files and model."""
    import numpy as np

    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import score_windows
    from acoustic_env.learn.artifact import load_model

    fs = cluster.s3()
    if not fs.exists("ae-out/train/model/model.json"):
        pytest.skip("needs the model of test_submitted_train_and_audit_against_s3")
    rows = [r for r in fs.cat_file("ae-in/big/clips.csv").decode().splitlines() if not r.startswith("#")][:3]
    fs.pipe_file("ae-in/windows/list.csv", ("# YTID, start_seconds, end_seconds, positive_labels\n"
                                            + "\n".join(rows) + "\n").encode())
    hop = ("--window-s", "1", "--hop-s", "0.5")
    cluster.submit("annotate", "--manifest", "s3://ae-in/windows/list.csv", "--audio-root", "s3://ae-in/big/audio",
                   "--model", "s3://ae-out/train/model", "--features", "s3://ae-out/big", "--output",
                   "s3://ae-out/windows", "--windows", *hop, "--windows-in-process-max", "0", "--span-windows", "1",
                   "--no-progress")
    fs.invalidate_cache()
    [part] = fs.glob("ae-out/windows/window-annotations/*.parquet")
    ray = pq.read_table(io.BytesIO(fs.cat_file(part))).to_pylist()
    assert len(fs.glob("ae-out/windows/window-parts/*/*.parquet")) == len(ray) > 3  # a part per span of one window
    fs.get("ae-out/train/model/", str(tmp_path / "model/"), recursive=True)
    local = []
    for uri in dict.fromkeys(r["uri"] for r in ray):
        fs.get(uri.removeprefix("s3://"), str(tmp_path / uri.rsplit("/", 1)[-1]))
        local.append({"clip_id": next(r["clip_id"] for r in ray if r["uri"] == uri),
                      "uri": str(tmp_path / uri.rsplit("/", 1)[-1])})
    here = score_windows(load_model(str(tmp_path / "model")), local,
                         WindowParams(windows=True, window_s=1.0, hop_s=0.5)).table.to_pylist()
    assert [(r["clip_id"], r["start_s"], r["end_s"], r["predicted"]) for r in ray] == [
        (r["clip_id"], r["start_s"], r["end_s"], r["predicted"]) for r in here]
    probs = [c for c in here[0] if c.startswith("prob_")]
    def matrix(table: list[dict]) -> np.ndarray:
        return np.array([[np.nan if r[c] is None else r[c] for c in probs] for r in table])

    np.testing.assert_allclose(matrix(ray), matrix(here), atol=1e-6)


def test_nightly_annotation_of_a_prefix_of_lists(cluster, tmp_path):
    """The nightly CronJob's command on a prefix of clip lists: two lists, then a third; each list once. (A run
    with nothing new does nothing: tests/test_annotate.py's ``test_directory_of_lists_each_once``, without a
    cluster: a job more here would test nothing that a cluster changes.)"""
    fs = cluster.s3()
    if not fs.exists("ae-out/train/model/model.json"):
        pytest.skip("needs the model of test_submitted_train_and_audit_against_s3")
    rows = [r for r in fs.cat_file("ae-in/big/clips.csv").decode().splitlines() if not r.startswith("#")]

    def put(name: str, chunk: list[str]) -> None:
        header = f"# new clips\n# num_ytids={len(chunk)}\n# YTID, start_seconds, end_seconds, positive_labels\n"
        fs.pipe_file(f"ae-in/incoming/{name}", (header + "\n".join(chunk) + "\n").encode())

    def recorded() -> list[str]:
        fs.invalidate_cache()
        return sorted(p.rsplit("/", 1)[-1] for p in fs.glob("ae-out/annotations/lists/*.json"))

    # two small lists of clips the extract above already has: annotate's extract skips them, the model scores them
    put("a.csv", rows[0:2])
    put("b.csv", rows[2:4])
    args = ("--lists", "s3://ae-in/incoming/", "--audio-root", "s3://ae-in/big/audio", "--model",
            "s3://ae-out/train/model", "--features", "s3://ae-out/big", "--output", "s3://ae-out/annotations",
            "--labels", "s3://ae-out/labels", "--no-progress")  # a label store nobody has written to: no label
    cluster.submit_job("reannotate", *args)
    assert recorded() == ["a.csv.json", "b.csv.json"]
    # the third list adds two clips nobody has extracted yet (their audio lands beside the others): the nightly
    # extract really runs for them, and adds them to the features
    new = generate_demo(tmp_path / "new", n_clips=2, seed=23, duration_s=2.0, n_broken=0)
    fs.put(str(new.audio_dir) + "/", "ae-in/big/audio/", recursive=True)
    new_rows = [r for r in new.clips_csv.read_text().splitlines() if not r.startswith("#")]
    new_ids = {p.stem for p in new.audio_dir.iterdir()}  # {YTID}_{start_ms}: the clip ids
    assert len(new_rows) == len(new_ids) == 2 and not new_ids & set(s3_clip_ids(fs, "ae-out/big"))
    put("c.csv", rows[4:6] + new_rows)
    cluster.submit_job("reannotate", *args)
    assert recorded() == ["a.csv.json", "b.csv.json", "c.csv.json"]
    runs = [json.loads(fs.cat_file(p)) for p in fs.glob("ae-out/annotations/runs/annotate-*.json")]
    assert sorted(sorted(r["lists"]) for r in runs) == [["a.csv", "b.csv"], ["c.csv"]]
    annotated = sum(r["counts"]["annotated"] for r in runs)
    ids = [i for p in fs.glob("ae-out/annotations/annotations/*.parquet")
           for i in pq.read_table(io.BytesIO(fs.cat_file(p)))["clip_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == annotated >= 6  # each clip once (a broken clip of a list has no features)
    extracted = {",".join(sorted(r["lists"])): r["counts"]["extracted"] for r in runs}
    assert extracted == {"a.csv,b.csv": 0, "c.csv": 2}, extracted
    features = s3_clip_ids(fs, "ae-out/big")
    assert new_ids <= set(features) and len(features) == len(set(features))
    assert new_ids <= set(ids), "the new clips are annotated too"


def test_nightly_soundscape_runs_on_the_cluster(cluster, shared_data):
    """jobs/soundscape/ as the nightly CronJob runs it (`acoustic-env submit soundscape`), on a deployment held in
    S3: three real forest recordings over two nights, scored into one table and a page of both nights. One run: the
    next night scored alone on resume is test_soundscape_job's (S3 too, without a cluster); without the config's
    model (``--model ''``: the histories with a model are test_soundscape_job's), so the test needs no job before it."""
    fs = cluster.s3()
    if not fs.exists("ae-in"):
        fs.mkdir("ae-in")
        fs.mkdir("ae-out")
    forest = shared_data / "maad_soundscapes"
    for name, source in (("20190522_230000", "230000"), ("20190522_231500", "231500"), ("20190523_230000", "230000")):
        fs.put(str(forest / f"S4A03895_20190522_{source}.wav"), f"ae-in/recorders/S4A03895_{name}.wav")
    job = cluster.submit_job("soundscape", "s3://ae-in/recorders/", "--output", "s3://ae-out/soundscape",
                             "--model", "")
    assert "3 file(s) on 1 site(s), 3 segment(s) (0 with an error, 0 file(s) unreadable); 3 span(s) scored now" \
        in cluster.logs(job)
    fs.invalidate_cache()
    table = pq.read_table(io.BytesIO(fs.cat_file("ae-out/soundscape/soundscape.parquet")))
    assert table.num_rows == 3 and table["error"].null_count == 3
    assert fs.exists("ae-out/soundscape/page/site0-2019-05-23-false-colour.png")
