"""cluster/ as an operator deploys it: every file checked without a cloud or a Kubernetes cluster.

* ``ray up`` configs: the fields Ray's autoscaler requires, official Ray images of the pinned
  Ray version, and cluster/install.sh as the install on every node type.
* Kubernetes: every built-in object in cluster/kuberay/ against the API models of the
  ``kubernetes`` client (pydantic models: unknown fields, wrong types and missing required
  fields all fail); RayCluster and RayJob against the KubeRay v1 fields (below); the CronJob's
  ServiceAccount bound to a Role that can create and get RayJobs, and nothing more.
* Images: each one named in cluster/ is the image the Dockerfile builds (through
  kustomization.yaml, its one definition) or an official Ray or Kubernetes image.
* Paths: each step of the pipeline reads what the step before wrote.
* Token authentication: every Ray process (``ray up`` nodes, KubeRay's Ray containers, its
  autoscaler and its job submitters) runs with ``RAY_AUTH_MODE=token`` and has the token: on
  ``ray up`` the file the operator generated, copied to Ray's default path on every node; on
  KubeRay ``RAY_AUTH_TOKEN`` from the Secret the operator creates (no token in any file here).
"""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
import yaml
from conftest import REPO
from kubernetes import client
from pydantic import BaseModel, TypeAdapter, ValidationError

CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
RAY_VERSION = re.search(r"^ray==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
OFFICIAL_RAY = re.compile(rf"^rayproject/ray:{re.escape(RAY_VERSION)}-py311-(cpu|gpu)$")
OFFICIAL_K8S = re.compile(r"^registry\.k8s\.io/[a-z0-9-]+:v[0-9.]+$")

# KubeRay v1 (ray.io/v1) fields, from the json tags of ray-project/kuberay's
# ray-operator/apis/ray/v1/raycluster_types.go and rayjob_types.go (KubeRay 1.1-1.3: the
# fields of the oldest release these manifests claim, `KubeRay >= 1.1`, which later releases
# keep). Required: the tags without `omitempty` (kubebuilder marks those required in the CRD).
RAYCLUSTER_SPEC = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
                   "autoscalerOptions", "headServiceAnnotations", "suspend"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams", "template",
                "scaleStrategy"}
AUTOSCALER = {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts", "securityContext",
              "idleTimeoutSeconds", "upscalingMode"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "entrypoint", "runtimeEnvYAML", "jobId", "submissionMode",
               "entrypointResources", "entrypointNumCpus", "entrypointNumGpus", "ttlSecondsAfterFinished",
               "shutdownAfterJobFinishes", "suspend"}
REQUIRED = {"head": {"rayStartParams", "template"},
            "worker": {"groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"}}
BUILT_IN = {("v1", "ConfigMap"): client.V1ConfigMap, ("v1", "ServiceAccount"): client.V1ServiceAccount,
            ("batch/v1", "CronJob"): client.V1CronJob, ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
            ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding}


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kube_objects() -> list[dict]:
    """Every object `kubectl apply -k cluster/kuberay` creates, and the RayJob the CronJob creates."""
    kustomization = yaml.safe_load((KUBERAY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in KUBERAY.glob("*.yaml")
                                                        if p.name != "kustomization.yaml"), "a file left out"
    docs = [d for name in kustomization["resources"] for d in load_all(KUBERAY / name)]
    templates = [yaml.safe_load(d["data"]["rayjob.yaml"]) for d in docs if d["kind"] == "ConfigMap"]
    return docs + templates


def check_model(data, model, where: str) -> None:
    """``data`` (parsed YAML) against a kubernetes client model (pydantic: unknown fields forbidden, types and
    required fields checked) or a plain type (strictly: no "300" for 300)."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            model.model_validate(data)
        else:
            TypeAdapter(model).validate_python(data, strict=True)
    except ValidationError as exc:
        raise AssertionError(f"{where}: {exc}") from None


def check_fields(data: dict, allowed: set[str], where: str, required: set[str] = frozenset()) -> None:
    assert set(data) <= allowed, f"{where}: {sorted(set(data) - allowed)} are not KubeRay v1 fields"
    assert required <= set(data), f"{where}: missing {sorted(required - set(data))}"


def check_cluster_spec(spec: dict, where: str) -> None:
    check_fields(spec, RAYCLUSTER_SPEC, where, {"headGroupSpec"})
    check_fields(spec.get("autoscalerOptions", {}), AUTOSCALER, f"{where}.autoscalerOptions")
    check_model(spec.get("autoscalerOptions", {}).get("idleTimeoutSeconds", 0), int, f"{where}.autoscalerOptions")
    head = spec["headGroupSpec"]
    check_fields(head, HEAD_GROUP, f"{where}.headGroupSpec", REQUIRED["head"])
    groups = [("headGroupSpec", head)]
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        check_fields(group, WORKER_GROUP, f"{where}.workerGroupSpecs[{i}]", REQUIRED["worker"])
        assert group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]
        groups.append((f"workerGroupSpecs[{i}]", group))
    for name, group in groups:
        check_model(group["rayStartParams"], dict[str, str], f"{where}.{name}.rayStartParams")
        check_model(group["template"], client.V1PodTemplateSpec, f"{where}.{name}.template")


def check_rayjob(doc: dict) -> None:
    where = f"RayJob {doc['metadata'].get('name') or doc['metadata'].get('generateName')}"
    check_model(doc["metadata"], client.V1ObjectMeta, f"{where}.metadata")
    check_fields(doc["spec"], RAYJOB_SPEC, where)
    assert ("rayClusterSpec" in doc["spec"]) != ("clusterSelector" in doc["spec"]), "a cluster to run on"
    if "rayClusterSpec" in doc["spec"]:
        check_cluster_spec(doc["spec"]["rayClusterSpec"], f"{where}.rayClusterSpec")
    if "submitterPodTemplate" in doc["spec"]:
        check_model(doc["spec"]["submitterPodTemplate"], client.V1PodTemplateSpec, f"{where}.submitterPodTemplate")
    yaml.safe_load(doc["spec"].get("runtimeEnvYAML", "{}"))


def test_kubernetes_objects_are_valid():
    kinds = []
    for doc in kube_objects():
        kinds.append(doc["kind"])
        if doc["apiVersion"] == "ray.io/v1":
            if doc["kind"] == "RayCluster":
                check_model(doc["metadata"], client.V1ObjectMeta, "RayCluster.metadata")
                check_cluster_spec(doc["spec"], "RayCluster")
            else:
                assert doc["kind"] == "RayJob"
                check_rayjob(doc)
        else:
            check_model(doc, BUILT_IN[(doc["apiVersion"], doc["kind"])], doc["kind"])
    assert sorted(kinds) == sorted(["ServiceAccount", "RayCluster", "RayJob", "CronJob", "ConfigMap", "RayJob",
                                    "ServiceAccount", "Role", "RoleBinding", "CronJob", "ConfigMap", "RayJob"])


def test_the_validation_catches_mistakes():
    """The checks above fail on a misspelt field, a wrong type, a missing required field."""
    cron = next(d for d in kube_objects() if d["kind"] == "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for broken in ({**pod, "restartPolicyy": "Never"}, {**pod, "containers": "submit"},
                   {k: v for k, v in pod.items() if k != "containers"}):
        with pytest.raises(AssertionError):
            check_model(broken, client.V1PodSpec, "pod")
    cluster = next(d for d in kube_objects() if d["kind"] == "RayCluster")
    with pytest.raises(AssertionError, match="KubeRay"):
        check_cluster_spec({**cluster["spec"], "workerGroups": []}, "RayCluster")


def test_cronjob_may_create_rayjobs_and_nothing_else():
    docs = kube_objects()
    cron = next(d for d in docs if d["kind"] == "CronJob")
    account = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account for d in docs)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    bound = [roles[b["roleRef"]["name"]] for b in docs if b["kind"] == "RoleBinding"
             and b["roleRef"]["kind"] == "Role"
             and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])]
    assert bound, f"{account} is bound to no Role"
    rules = [r for role in bound for r in role["rules"]]
    assert any("ray.io" in r["apiGroups"] and "rayjobs" in r["resources"] and {"create", "get"} <= set(r["verbs"])
               for r in rules)
    assert all(r["apiGroups"] == ["ray.io"] and r["resources"] == ["rayjobs"] and set(r["verbs"]) <= {"create", "get"}
               for r in rules), "only what it needs"
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs), "namespaced only"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["kubectl", "create"]  # create: generateName gives each night a new RayJob
    template = next(d for d in docs if d["kind"] == "RayJob" and "generateName" in d["metadata"])
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and "clusterSelector" in template["spec"]


def _images() -> list[str]:
    found = []
    for path in [*CLUSTER.glob("*.yaml"), *KUBERAY.glob("*.yaml")]:
        found += re.findall(r"\b(?:image|worker_image):\s*(\S+)", path.read_text())
    return found


def test_every_image_is_built_here_or_official():
    kustomization = yaml.safe_load((KUBERAY / "kustomization.yaml").read_text())
    built = {i["name"]: i for i in kustomization["images"]}
    assert set(built) == {"acoustic-env", "acoustic-env-gpu"}
    assert built["acoustic-env"]["newName"] == built["acoustic-env-gpu"]["newName"]
    assert built["acoustic-env"]["newTag"] == VERSION and built["acoustic-env-gpu"]["newTag"] == f"{VERSION}-gpu"
    images = _images()
    assert images and "acoustic-env-gpu" in images
    for image in images:
        assert image in built or OFFICIAL_RAY.match(image) or OFFICIAL_K8S.match(image), image
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={RAY_VERSION}\n" in dockerfile
    assert "FROM rayproject/ray:${RAY_VERSION}-py311-${VARIANT}" in dockerfile
    assert 'RUN bash cluster/install.sh "${VARIANT}"' in dockerfile


def test_nothing_hides_a_failure():
    for path in [*CLUSTER.rglob("*"), REPO / "Dockerfile"]:
        if path.is_file():
            assert "|| true" not in path.read_text(), path


@pytest.mark.parametrize("name,provider,extras", [("aws.yaml", "aws", ""), ("gcp.yaml", "gcp", " gcs")])
def test_ray_up_configs(name, provider, extras):
    cfg = yaml.safe_load((CLUSTER / name).read_text())
    for key in ("cluster_name", "max_workers", "provider", "available_node_types", "head_node_type",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cfg, key
    assert cfg["provider"]["type"] == provider
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert {"cpu_worker", "gpu_worker"} <= set(types)
    for t in types.values():
        assert "node_config" in t and "resources" in t
    for t in ("cpu_worker", "gpu_worker"):
        assert types[t]["min_workers"] <= types[t]["max_workers"] <= cfg["max_workers"]
    assert types["head"]["resources"] == {"CPU": 0}, "no pipeline work on the head"
    gpu = types["gpu_worker"]["node_config"]
    assert "g5" in str(gpu) or "guestAccelerators" in gpu
    head_cmd = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_cmd, "dashboard and job server on localhost"
    assert "aws_secret_access_key" not in (CLUSTER / name).read_text().lower()
    # the checkout goes to every node and install.sh installs it: CPU build on head and CPU workers, CUDA on GPU
    mounts = {remote: local for remote, local in cfg["file_mounts"].items() if remote != TOKEN_MOUNT}
    assert all(remote == f"~/acoustic-env/{local.removeprefix('./')}" for remote, local in mounts.items())
    needed = {"acoustic_env", "cluster", "pyproject.toml", "constraints.txt", "README.md"}  # the build's inputs
    assert {local.removeprefix("./") for local in mounts.values()} == needed
    assert "setup_commands" not in cfg, "shared setup commands would install torch's CPU build on GPU nodes too"
    assert cfg["head_setup_commands"] == cfg["worker_setup_commands"] == [
        f"bash ~/acoustic-env/cluster/install.sh cpu{extras}"]
    assert types["gpu_worker"]["worker_setup_commands"] == [f"bash ~/acoustic-env/cluster/install.sh gpu{extras}"]
    assert OFFICIAL_RAY.match(cfg["docker"]["image"]) and types["gpu_worker"]["docker"]["worker_image"].endswith("-gpu")


#: Ray's default token path: where `ray get-auth-token --generate` writes and where every Ray process looks.
TOKEN_MOUNT = "~/.ray/auth_token"
#: The Secret the operator creates (cluster/README.md); KubeRay's pods read it as RAY_AUTH_TOKEN.
TOKEN_SECRET = {"name": "acoustic-env-ray-token", "key": "token"}


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_ray_up_token_authentication(name):
    """Every node starts Ray in token mode and has the token before `ray start`: file_mounts are synced
    before the setup and start commands (the head's from the operator's machine, each worker's from the
    head), and the token goes to Ray's default path, which `ray start` and the jobs read."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(yaml.safe_load((CLUSTER / name).read_text())))  # Ray's own schema
    assert cfg["file_mounts"][TOKEN_MOUNT] == TOKEN_MOUNT, "the operator's token, at the same path on every node"
    from ray._private.authentication.authentication_token_setup import _get_default_token_path

    assert str(_get_default_token_path()).endswith(TOKEN_MOUNT.removeprefix("~")), "Ray's default token path"
    assert "cluster_synced_files" not in cfg, "not bind-mounted into the worker's container: the token would not arrive"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg[key] if "ray start" in c]
        assert starts and all(c.startswith("RAY_AUTH_MODE=token ray start ") for c in starts), (key, starts)
    for node_type in cfg["available_node_types"].values():
        for key in ("worker_start_ray_commands", "head_start_ray_commands"):
            assert key not in node_type, "a node type's own start commands would skip the token mode"
    assert "auth_token" not in " ".join(cfg["head_setup_commands"] + cfg["worker_setup_commands"]), \
        "nothing prints the token into `ray up`'s output"


def ray_containers(doc: dict) -> list[tuple[str, dict]]:
    """Every container of a RayCluster or RayJob that talks to Ray: head, workers, the autoscaler KubeRay adds
    to the head, and the RayJob's submitter (KubeRay's default one has no env of ours: it must be given)."""
    spec = doc["spec"]
    found = []
    if doc["kind"] == "RayJob":
        template = spec.get("submitterPodTemplate", {"spec": {"containers": [{"name": "default submitter"}]}})
        found += [(f"submitter {c['name']}", c) for c in template["spec"]["containers"]]
        spec = spec.get("rayClusterSpec")
        if spec is None:  # clusterSelector: the cluster is raycluster.yaml's
            return found
    if spec.get("enableInTreeAutoscaling"):
        found.append(("autoscaler", spec.get("autoscalerOptions", {})))
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    found += [(f"{g.get('groupName', 'head')} {c['name']}", c) for g in groups for c in g["template"]["spec"]["containers"]]
    return found


def check_token(doc: dict) -> int:
    """Each Ray container of ``doc`` in token mode with RAY_AUTH_TOKEN from the Secret; how many."""
    containers = ray_containers(doc)
    for where, container in containers:
        env = {e["name"]: e for e in container.get("env", [])}
        where = f"{doc['kind']} {doc['metadata'].get('name') or doc['metadata']['generateName']}: {where}"
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", where
        assert env.get("RAY_AUTH_TOKEN", {}).get("valueFrom") == {"secretKeyRef": TOKEN_SECRET}, where
    return len(containers)


def test_kuberay_token_authentication():
    """Every Ray container runs in token mode with RAY_AUTH_TOKEN from the operator's Secret; the CronJob's
    kubectl pod talks only to the Kubernetes API; no Secret (no token) is committed."""
    docs = kube_objects()
    checked = sum(check_token(doc) for doc in docs if doc["apiVersion"] == "ray.io/v1")
    assert checked == 9  # RayCluster: autoscaler, head, cpu, gpu; pipeline: submitter, head, cpu; nightly: 2 submitters
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert "env" not in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert not any(d["kind"] == "Secret" for d in docs), "the operator creates the Secret; no token in the repository"
    readme = (CLUSTER / "README.md").read_text()
    assert (f"kubectl create secret generic {TOKEN_SECRET['name']} --from-literal={TOKEN_SECRET['key']}="
            in readme), "the README says how to create the Secret"


def test_the_token_check_catches_a_missing_token():
    """KubeRay's default submitter (no submitterPodTemplate), or a worker without the Secret, fails the check."""
    nightly = next(d for d in kube_objects() if d["kind"] == "RayJob" and "generateName" in d["metadata"])
    without = {**nightly, "spec": {k: v for k, v in nightly["spec"].items() if k != "submitterPodTemplate"}}
    with pytest.raises(AssertionError, match="default submitter"):
        check_token(without)
    cluster = next(d for d in kube_objects() if d["kind"] == "RayCluster")
    cluster["spec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["env"].pop()
    with pytest.raises(AssertionError, match="gpu ray-worker"):
        check_token(cluster)


def test_every_container_in_token_mode_has_a_token():
    """Across cluster/: whatever states RAY_AUTH_MODE=token also has a token source."""
    def walk(node):
        if isinstance(node, dict):
            env = node.get("env")
            if isinstance(env, list) and {"name": "RAY_AUTH_MODE", "value": "token"} in env:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    stated = [c for doc in kube_objects() for c in walk(doc)]
    assert len(stated) == 9
    for container in stated:
        names = {e["name"] for e in container["env"]}
        assert names & {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}, container.get("name", "autoscalerOptions")


def test_runtime_env():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "."
    wd = "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"
    # what `install.sh cpu` installs, from the job's own copy of the checkout, through the same files
    assert env["pip"]["packages"] == [f"-r {wd}/cluster/torch-cpu.txt", f"-c {wd}/constraints.txt", wd]
    install = (CLUSTER / "install.sh").read_text()
    assert '"${pip[@]}" -r "$root/cluster/torch-cpu.txt"' in install and '-c "$root/constraints.txt"' in install
    torch = [line for line in (CLUSTER / "torch-cpu.txt").read_text().splitlines() if not line.startswith("#")]
    assert torch == ["--extra-index-url https://download.pytorch.org/whl/cpu", "torch"]
    # the index is named in that one file, nowhere else in cluster/ or the Dockerfile
    for path in [*CLUSTER.rglob("*"), REPO / "Dockerfile"]:
        if path.is_file() and path.name != "torch-cpu.txt":
            assert "download.pytorch.org" not in path.read_text(), path
    assert not any("SECRET" in k or "KEY_ID" in k for k in env.get("env_vars", {}))


JOBS = REPO / "jobs"


def _config(step: str) -> tuple[str, dict]:
    """One step of an entrypoint, ``python -m acoustic_env.cli <job> --config jobs/<name>/config.yaml``: its job and
    its config, built and validated as the command builds it (a bad key or value fails here, not at night)."""
    from acoustic_env.config import load_config_file
    from acoustic_env.config.schema import from_dict
    from acoustic_env.jobs import catalog

    words = shlex.split(step)
    assert words[:3] == ["python", "-m", "acoustic_env.cli"] and words[4] == "--config" and len(words) == 6, step
    data = load_config_file(str(REPO / words[5]))
    from_dict(catalog.get(words[3]).config, data)
    return words[3], data


def test_each_job_of_jobs_is_one_entry_point_a_runtime_env_and_a_valid_config():
    """jobs/<name>/job.yaml: its entry point runs its own config.yaml, and its runtime environment is a file."""
    from acoustic_env.jobs.submit import definition

    names = sorted(p.parent.name for p in JOBS.glob("*/job.yaml"))
    assert {"extract", "train", "audit", "reannotate", "soundscape"} <= set(names), names
    for name in names:
        job = definition(str(JOBS), name)
        assert job.entrypoint.endswith(f"--config jobs/{name}/config.yaml") and (REPO / job.runtime_env).is_file()
        _config(job.entrypoint)


def test_the_manifests_and_the_documented_submit_run_the_jobs_definitions():
    """Read, not copied: the pipeline RayJob's steps are extract's, train's and audit's entry points, the nightly
    RayJobs' are reannotate's and soundscape's, and docs/cluster.md's `ray job submit` runs extract's with its
    runtime environment."""
    from acoustic_env.jobs.submit import definition

    docs = kube_objects()
    entry = {name: definition(str(JOBS), name).entrypoint
             for name in ("extract", "train", "audit", "reannotate", "soundscape")}
    pipeline = next(d for d in docs if d["metadata"].get("name") == "acoustic-env-pipeline")["spec"]["entrypoint"]
    nightly = sorted(d["spec"]["entrypoint"].strip() for d in docs
                     if d["kind"] == "RayJob" and "generateName" in d["metadata"])
    assert [s.strip() for s in pipeline.split("&&")] == [entry["extract"], entry["train"], entry["audit"]]
    assert nightly == sorted([entry["reannotate"], entry["soundscape"]])
    page = (REPO / "docs" / "cluster.md").read_text()
    assert f"--runtime-env {definition(str(JOBS), 'extract').runtime_env}" in page
    assert f"-- {entry['extract']}\n" in page


def test_each_step_reads_what_the_step_before_wrote():
    steps = dict(_config(definition) for definition in (
        "python -m acoustic_env.cli extract --config jobs/extract/config.yaml",
        "python -m acoustic_env.cli train --config jobs/train/config.yaml",
        "python -m acoustic_env.cli audit --config jobs/audit/config.yaml",
        "python -m acoustic_env.cli annotate --config jobs/reannotate/config.yaml"))
    features = steps["extract"]["output"]
    assert steps["train"]["features"] == steps["audit"]["features"] == steps["annotate"]["features"] == features
    assert steps["annotate"]["model"] == steps["train"]["output"] + "/model"  # train writes <output>/model/
    assert steps["annotate"]["lists"].endswith("/")
    assert steps["annotate"]["extract"]["audio_root"] == steps["extract"]["audio_root"]


def test_submits_lines_never_show_a_uris_credentials():
    """``submit --dry-run`` and the submitted job's lines name the job server and the command with any user-info or
    secret query value as ``***`` (a dashboard behind basic auth, an output on a presigned URL)."""
    from acoustic_env.config import from_dict
    from acoustic_env.config.cluster import SubmitConfig
    from acoustic_env.jobs.submit import Submitted, plan_submit, summary_lines

    cfg = from_dict(SubmitConfig, {"job": "extract", "jobs": str(JOBS), "address": "http://ann:hunter2@head:8265",
                                   "options": "--output s3://b/out?X-Amz-Signature=abc123"})
    lines = plan_submit(cfg)["lines"] + summary_lines(Submitted(
        "extract", "extract-1", "python -m acoustic_env.cli extract --output s3://b/out?X-Amz-Signature=abc123",
        "SUCCEEDED", ""))
    text = "\n".join(lines)
    assert "hunter2" not in text and "abc123" not in text
    assert "http://***@head:8265" in text and "X-Amz-Signature=***" in text
