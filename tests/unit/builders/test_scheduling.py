from __future__ import annotations

from notebook_controller.api.models import Notebook
from notebook_controller.builders import workload
from tests.unit.builders.seeds import with_spec


def test_gpu_example_runs_under_the_t9k_scheduler_in_its_queue(gpu: Notebook) -> None:
    sts = workload.statefulset(gpu)
    template = sts["spec"]["template"]
    assert template["spec"]["schedulerName"] == "t9k-scheduler"
    assert template["metadata"]["labels"]["scheduler.tensorstack.dev/queue"] == "default"
    [container] = template["spec"]["containers"]
    resources = container["resources"]
    assert resources["limits"] == {"tensorstack.dev/nvidia-gpu-percent": 30}
    assert resources["requests"]["cpu"] == "0.5"  # the rest of the user's spec as given


def test_gpu_limits_are_completed_in_every_container_but_never_overridden(gpu: Notebook) -> None:
    containers = [
        {"name": "a", "image": "x", "resources": {"requests": {"tensorstack.dev/nvidia-gpu": 1}}},
        {
            "name": "b",
            "image": "x",
            "resources": {
                "requests": {"tensorstack.dev/nvidia-gpu-percent": 20},
                "limits": {"tensorstack.dev/nvidia-gpu-percent": 20, "cpu": "1"},
            },
        },
        {"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}},
    ]
    init = [
        {"name": "i", "image": "x", "resources": {"requests": {"tensorstack.dev/nvidia-gpu": 2}}}
    ]
    nb = with_spec(gpu, template={"spec": {"containers": containers, "initContainers": init}})
    spec = workload.statefulset(nb)["spec"]["template"]["spec"]
    limits = [c.get("resources", {}).get("limits") for c in spec["containers"]]
    assert limits == [
        {"tensorstack.dev/nvidia-gpu": 1},
        {"tensorstack.dev/nvidia-gpu-percent": 20, "cpu": "1"},
        None,
    ]
    assert spec["initContainers"][0]["resources"]["limits"] == {"tensorstack.dev/nvidia-gpu": 2}


def test_without_a_queue_the_default_scheduler_is_kept(basic: Notebook) -> None:
    template = workload.statefulset(basic)["spec"]["template"]
    assert "schedulerName" not in template["spec"]
    assert "scheduler.tensorstack.dev/queue" not in template["metadata"]["labels"]
