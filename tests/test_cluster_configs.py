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
    yaml.safe_load(doc["spec"]["runtimeEnvYAML"])


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
                                    "ServiceAccount", "Role", "RoleBinding"])


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
    mounts = cfg["file_mounts"]
    assert all(remote == f"~/acoustic-env/{local.removeprefix('./')}" for remote, local in mounts.items())
    needed = {"acoustic_env", "jobs", "cluster", "pyproject.toml", "constraints.txt", "README.md"}  # the build's inputs
    assert {local.removeprefix("./") for local in mounts.values()} == needed
    assert "setup_commands" not in cfg, "shared setup commands would install torch's CPU build on GPU nodes too"
    assert cfg["head_setup_commands"] == cfg["worker_setup_commands"] == [
        f"bash ~/acoustic-env/cluster/install.sh cpu{extras}"]
    assert types["gpu_worker"]["worker_setup_commands"] == [f"bash ~/acoustic-env/cluster/install.sh gpu{extras}"]
    assert OFFICIAL_RAY.match(cfg["docker"]["image"]) and types["gpu_worker"]["docker"]["worker_image"].endswith("-gpu")


def test_runtime_env():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "."
    wd = "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"
    # what install.sh installs, from the job's own copy of the checkout
    assert env["pip"]["packages"] == [f"-c {wd}/constraints.txt", wd]
    assert not any("SECRET" in k or "KEY_ID" in k for k in env.get("env_vars", {}))


def _args(command: str) -> dict[str, dict[str, str]]:
    """``python jobs/<job>.py --flag value ...`` steps of an entrypoint → {job: {flag: value}}."""
    steps = {}
    for step in command.split("&&"):
        words = shlex.split(step)
        job = re.fullmatch(r"jobs/(\w+)\.py", words[1]).group(1)
        steps[job] = {w: v for w, v in zip(words[2:], [*words[3:], ""]) if w.startswith("--")}
    return steps


def test_each_step_reads_what_the_step_before_wrote():
    docs = kube_objects()
    pipeline = _args(next(d for d in docs if d["metadata"].get("name") == "acoustic-env-pipeline")["spec"]["entrypoint"])
    nightly = _args(next(d for d in docs if d["kind"] == "RayJob" and "generateName" in d["metadata"])
                    ["spec"]["entrypoint"])
    assert list(pipeline) == ["extract", "train", "audit"]
    features = pipeline["extract"]["--output"]
    assert pipeline["train"]["--features"] == pipeline["audit"]["--features"] == nightly["annotate"]["--features"] \
        == features
    assert nightly["annotate"]["--model"] == pipeline["train"]["--output"] + "/model"  # train writes <output>/model/
    assert nightly["annotate"]["--lists"].endswith("/")
    assert nightly["annotate"]["--audio-root"] == pipeline["extract"]["--audio-root"]


def test_entrypoints_parse():
    """Each job's arguments in the manifests are flags the job takes (no typo waits for the night)."""
    from acoustic_env.cli import build_parser

    for doc in kube_objects():
        if doc["kind"] == "RayJob":
            for step in doc["spec"]["entrypoint"].split("&&"):
                words = shlex.split(step)
                job = re.fullmatch(r"jobs/(\w+)\.py", words[1]).group(1)
                assert build_parser().parse_args([job, *words[2:]]).command == job
