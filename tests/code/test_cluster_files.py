"""cluster.yaml, the RayJob manifest, the Dockerfile and the cluster job configs agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from vda.jobs.cli import JOBS
from vda.platform.core.config import load_config
from vda.platform.infer.config import InferConfig
from vda.platform.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _cluster():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _gpu_types(cluster):
    types = cluster["available_node_types"]
    return {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}


def test_cluster_yaml_is_a_complete_aws_launcher_config():
    cluster = _cluster()
    assert cluster["provider"]["type"] == "aws" and cluster["provider"]["region"]
    assert cluster["docker"]["image"]
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"]["CPU"] == 0  # the head runs no work
    workers = {n: t for n, t in types.items() if n != cluster["head_node_type"]}
    assert _gpu_types(cluster) and any("GPU" not in t["resources"] for t in workers.values())
    for name, node in types.items():
        config = node["node_config"]
        assert config["InstanceType"] and config["IamInstanceProfile"]["Arn"], name
        assert config["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] >= 200, name
    for name, node in workers.items():
        assert 0 <= node["min_workers"] <= node["max_workers"], name
    assert cluster["max_workers"] >= sum(t["max_workers"] for t in workers.values())
    assert any("--num-cpus=0" in c for c in cluster["head_start_ray_commands"])


def test_cluster_job_configs_load_and_fit_the_gpu_nodes():
    cluster = _cluster()
    gpu_nodes = _gpu_types(cluster).values()
    infer = load_config(InferConfig, ROOT / "configs" / "infer_cluster.yaml")
    train = load_config(TrainConfig, ROOT / "configs" / "train_cluster.yaml")

    actors = infer.actors
    fitting = [n for n in gpu_nodes if n["resources"]["CPU"] >= actors.cpus_per_actor]
    assert fitting and actors.gpus_per_actor <= min(n["resources"]["GPU"] for n in fitting)
    total_gpus = sum(n["resources"]["GPU"] * n["max_workers"] for n in gpu_nodes)
    assert actors.num_actors == "auto" and actors.max_actors  # follows the autoscaler, bounded
    assert actors.max_actors * actors.gpus_per_actor <= total_gpus

    assert train.use_gpu
    per_gpu_cpus = min(n["resources"]["CPU"] / n["resources"]["GPU"] for n in gpu_nodes)
    # each worker takes one GPU and its CPUs; the rest of the node's CPUs decode data
    assert train.cpus_per_worker + train.data.clip.decode_cpus <= per_gpu_cpus
    assert train.num_workers <= total_gpus
    assert train.storage_path.startswith("s3://")
    assert infer.mlflow.tracking_uri.startswith("http") and train.mlflow.tracking_uri.startswith(
        "http"
    )


def _actors_per_node(resources: dict, actors) -> int:
    by_cpu = int(resources["CPU"] // actors.cpus_per_actor) if actors.cpus_per_actor else 10**6
    by_gpu = (
        int(resources.get("GPU", 0) // actors.gpus_per_actor) if actors.gpus_per_actor else 10**6
    )
    return min(by_cpu, by_gpu)


def test_the_infer_config_s_actors_can_be_placed_on_both_cluster_files():
    """The most actors `configs/infer_cluster.yaml` asks for fit the GPU nodes of cluster.yaml
    and of the KubeRay job (which must autoscale to more than its initial replicas to hold
    them). Stitches of split videos run inside the actors: no CPU need be left for them."""
    infer = load_config(InferConfig, ROOT / "configs" / "infer_cluster.yaml")
    actors = infer.actors
    launcher = [(t["resources"], t["max_workers"]) for t in _gpu_types(_cluster()).values()]
    job = yaml.safe_load((ROOT / "k8s" / "rayjob-infer.yaml").read_text())["spec"]
    spec = job["rayClusterSpec"]
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    kuberay = []
    for group in spec["workerGroupSpecs"]:
        params = group["rayStartParams"]
        resources = {"CPU": float(params["num-cpus"]), "GPU": float(params.get("num-gpus", 0))}
        kuberay.append((resources, group["maxReplicas"] if autoscaling else group["replicas"]))
    for name, nodes in (("cluster.yaml", launcher), ("k8s/rayjob-infer.yaml", kuberay)):
        capacity = sum(_actors_per_node(r, actors) * count for r, count in nodes)
        assert capacity >= actors.max_actors, (
            f"{name} holds {capacity} actors, not {actors.max_actors}"
        )
    assert autoscaling or sum(g["replicas"] for g in spec["workerGroupSpecs"]) >= actors.max_actors


def test_rayjob_manifest_matches_the_cluster_shape():
    job = yaml.safe_load((ROOT / "k8s" / "rayjob-infer.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    command = job["spec"]["entrypoint"].split()
    assert command[0] == "vda" and command[1] in {j.name for j in JOBS if j.module}
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == _ray_version()
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in spec["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert int(group["rayStartParams"]["num-gpus"]) == gpus
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def _ray_version() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("ray["))
    return pin.split("==")[1]


def test_dockerfile_base_matches_the_pinned_ray_and_python():
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert base.startswith(f"rayproject/ray:{_ray_version()}-py311")
    assert base.endswith("-gpu")


def test_dockerfile_copies_the_package_root_and_every_folder_it_links():
    """`pip install .` in the image sees only what was copied: the root and its links' targets."""
    copied = set(re.findall(r"^COPY \S+ (\S+) \./", (ROOT / "Dockerfile").read_text(), re.M))
    linked = {path.name for path in (ROOT / "vda").iterdir() if path.is_symlink()}
    assert linked == {"model", "platform", "jobs"}
    assert {"vda", *linked} <= copied
