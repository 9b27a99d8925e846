"""Valid Notebooks are stored as written, with the documented defaults filled in."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.api.notebooks import Manifest, apply, get, gpu, notebook
from tests.kube import Cluster

pytestmark = pytest.mark.cluster

SEED = Path(__file__).with_name("seed")


@pytest.fixture(autouse=True)
def _crd(notebook_crd: str) -> None:
    """Every test here needs the CRD."""


def applied(cluster: Cluster, namespace: str, manifest: Manifest | str) -> None:
    result = apply(cluster, namespace, manifest)
    assert result.returncode == 0, result.stderr


def test_seed_basic_example(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, (SEED / "notebook-example.yaml").read_text())
    spec = get(cluster, namespace, "notebook-sample")["spec"]
    assert spec["type"] == "jupyter"
    assert spec["runMode"] == "running"
    assert "suspend" not in spec
    assert spec["template"]["spec"]["containers"] == [
        {"image": "t9kpublic/tensorflow-2.11.0-notebook-cpu:latest", "name": "tensorflow"}
    ]


def test_seed_gpu_example(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, (SEED / "notebook-gpu-sample.yaml").read_text())
    spec = get(cluster, namespace, "notebook-gpu-sample")["spec"]
    assert spec["type"] == "jupyter"  # defaulted
    assert "runMode" not in spec  # absent means running
    assert spec["scheduler"] == {"t9kScheduler": {"queue": "default"}}
    requests = spec["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "0.5", "memory": "1.0Gi", "tensorstack.dev/nvidia-gpu-percent": 30}


def test_seed_ssh_example(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, (SEED / "notebook-ssh-sample.yaml").read_text())
    spec = get(cluster, namespace, "notebook-sample")["spec"]
    assert spec["type"] == "jupyter"
    assert spec["ssh"] == {
        "enabled": True,
        "serviceType": "NodePort",
        "authorized_keys": ["my-public-key"],
    }


def test_ssh_defaults(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, notebook(ssh={}))
    assert get(cluster, namespace, "nb")["spec"]["ssh"] == {
        "enabled": False,
        "serviceType": "ClusterIP",
    }


def test_a_lone_suspend_is_not_contradicted_by_a_default(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, notebook(suspend=True))
    spec = get(cluster, namespace, "nb")["spec"]
    assert spec["suspend"] is True
    assert "runMode" not in spec


def test_run_mode_and_suspend_that_agree(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, notebook("paused", runMode="paused", suspend=True))
    applied(cluster, namespace, notebook("running", runMode="running", suspend=False))
    assert get(cluster, namespace, "paused")["spec"]["suspend"] is True
    assert get(cluster, namespace, "running")["spec"]["suspend"] is False


def test_longest_legal_name(cluster: Cluster, namespace: str) -> None:
    """Child objects get truncated-and-hashed names, so any legal object name works."""
    name = ("nb-" + "x" * 250)[:253]
    applied(cluster, namespace, notebook(name))
    assert get(cluster, namespace, name)["metadata"]["name"] == name


@pytest.mark.parametrize("percent", [1, 100, "30", "50"])
def test_gpu_percent_whole_numbers(cluster: Cluster, namespace: str, percent: int | str) -> None:
    applied(cluster, namespace, notebook(template=gpu(requests=percent, limits=percent)))


def test_gpu_requests_alone_get_their_limits_from_the_controller(
    cluster: Cluster, namespace: str
) -> None:
    applied(cluster, namespace, notebook(template=gpu(requests=2, resource="nvidia-gpu")))
    applied(cluster, namespace, notebook("percent", template=gpu(requests=30)))


def test_native_resources_may_be_overcommitted(cluster: Cluster, namespace: str) -> None:
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}}
    template = {"spec": {"containers": [{"name": "a", "image": "b", "resources": resources}]}}
    applied(cluster, namespace, notebook(template=template))


def test_queue_can_be_added_and_kept(cluster: Cluster, namespace: str) -> None:
    applied(cluster, namespace, notebook())
    applied(cluster, namespace, notebook(scheduler={"t9kScheduler": {"queue": "team-a"}}))
    # other changes are fine while the queue stays
    applied(
        cluster,
        namespace,
        notebook(scheduler={"t9kScheduler": {"queue": "team-a"}}, runMode="paused"),
    )
    spec = get(cluster, namespace, "nb")["spec"]
    assert spec["scheduler"]["t9kScheduler"]["queue"] == "team-a"
    assert spec["runMode"] == "paused"


@pytest.mark.parametrize(
    "scheduler",
    [{"t9kScheduler": {"queue": "team-b"}}, {}, None],
    ids=["changed", "t9k-scheduler-removed", "scheduler-removed"],
)
def test_queue_is_immutable_while_running(
    cluster: Cluster, namespace: str, scheduler: dict[str, object] | None
) -> None:
    applied(cluster, namespace, notebook(scheduler={"t9kScheduler": {"queue": "team-a"}}))
    update = notebook() if scheduler is None else notebook(scheduler=scheduler)
    result = apply(cluster, namespace, update)
    assert result.returncode != 0
    assert "spec.scheduler: Invalid value" in result.stderr
    assert "spec.scheduler.t9kScheduler.queue can't be changed or removed while the" in (
        result.stderr
    )
    assert get(cluster, namespace, "nb")["spec"]["scheduler"]["t9kScheduler"]["queue"] == "team-a"


def test_a_paused_notebook_can_change_its_queue(cluster: Cluster, namespace: str) -> None:
    queue = {"t9kScheduler": {"queue": "team-a"}}
    applied(cluster, namespace, notebook(scheduler=queue))
    applied(cluster, namespace, notebook(scheduler=queue, suspend=True))  # pause
    applied(
        cluster, namespace, notebook(scheduler={"t9kScheduler": {"queue": "team-b"}}, suspend=True)
    )
    assert get(cluster, namespace, "nb")["spec"]["scheduler"]["t9kScheduler"]["queue"] == "team-b"
    # resumed in the new queue; from there it is fixed again
    applied(cluster, namespace, notebook(scheduler={"t9kScheduler": {"queue": "team-b"}}))
    result = apply(cluster, namespace, notebook(scheduler=queue))
    assert result.returncode != 0 and "while the notebook runs" in result.stderr


def test_status_is_a_subresource(cluster: Cluster, namespace: str) -> None:
    """A user's apply can't write status; the status endpoint can't write spec."""
    manifest = notebook()
    manifest["status"] = {"phase": "Running"}
    applied(cluster, namespace, manifest)
    assert get(cluster, namespace, "nb").get("status", {}).get("phase") is None
    cluster.kubectl(
        "patch",
        "notebook",
        "nb",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump({"status": {"phase": "Running"}, "spec": {"type": "rstudio"}}),
    )
    stored = get(cluster, namespace, "nb")
    assert stored["status"]["phase"] == "Running"
    assert stored["spec"]["type"] == "jupyter"


def test_nulls_for_optional_fields_are_dropped(cluster: Cluster, namespace: str) -> None:
    """A client that writes unset fields as null gets them unset (or defaulted), not refused."""
    applied(cluster, namespace, notebook(runMode=None, suspend=None, ssh=None, type=None))
    spec = get(cluster, namespace, "nb")["spec"]
    assert set(spec) == {"template", "type"}
    assert spec["type"] == "jupyter"
