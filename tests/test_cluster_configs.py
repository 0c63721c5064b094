"""cluster/ files parse and hold the fields Ray's autoscaler and KubeRay require (no cloud needed)."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

CLUSTER = REPO / "cluster"


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("name,provider", [("aws.yaml", "aws"), ("gcp.yaml", "gcp")])
def test_ray_up_configs(name, provider):
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


def test_runtime_env():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "."
    assert not any("SECRET" in k or "KEY_ID" in k for k in env.get("env_vars", {}))


def _pod_containers(template):
    containers = template["spec"]["containers"]
    assert containers and all("image" in c and "name" in c for c in containers)
    return containers


def _check_cluster_spec(spec):
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head
    _pod_containers(head["template"])
    for group in spec.get("workerGroupSpecs", []):
        for key in ("groupName", "rayStartParams", "template"):
            assert key in group, key
        assert group.get("minReplicas", 0) <= group.get("replicas", 0) <= group.get("maxReplicas", 10**9)
        _pod_containers(group["template"])


def test_kuberay_raycluster():
    (doc,) = load_all(CLUSTER / "kuberay" / "raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    _check_cluster_spec(doc["spec"])
    gpu = next(g for g in doc["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    limits = _pod_containers(gpu["template"])[0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert doc["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"


def test_kuberay_rayjob():
    (doc,) = load_all(CLUSTER / "kuberay" / "rayjob-extract.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    assert doc["spec"]["entrypoint"].startswith("python jobs/extract.py")
    _check_cluster_spec(doc["spec"]["rayClusterSpec"])
    yaml.safe_load(doc["spec"]["runtimeEnvYAML"])


def test_scheduled_annotation():
    cron, configmap = load_all(CLUSTER / "kuberay" / "cronjob-annotate.yaml")
    assert cron["apiVersion"] == "batch/v1" and cron["kind"] == "CronJob"
    assert len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    rayjob = yaml.safe_load(configmap["data"]["rayjob.yaml"])
    assert rayjob["kind"] == "RayJob" and "clusterSelector" in rayjob["spec"]
    assert rayjob["spec"]["entrypoint"].startswith("python jobs/annotate.py")
