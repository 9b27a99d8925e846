"""Invalid Notebooks are refused at admission, with a message naming the field and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.notebooks import Manifest, apply, container, gpu, notebook, pod_spec
from tests.kube import Cluster

pytestmark = pytest.mark.cluster

CONTAINERS = "spec.template.spec.containers"
GPU_PERCENT = "tensorstack.dev/nvidia-gpu-percent"
GPU_PERCENT_REQUEST = f"{CONTAINERS}[0].resources.requests[{GPU_PERCENT}]"
WHOLE_PERCENT = f"[{GPU_PERCENT}] must be a whole number from 1 to 100"
EXTENDED_EQUAL = "or of hugepages must equal its resources.limits"


def with_spec(spec: dict[str, Any]) -> Manifest:
    manifest = notebook()
    manifest["spec"] = spec
    return manifest


CASES = [
    pytest.param(
        {k: v for k, v in notebook().items() if k != "spec"},
        "spec",
        "Required value",
        id="no-spec",
    ),
    pytest.param(
        notebook(template={"spec": {"containers": []}}),
        CONTAINERS,
        "should have at least 1 items",
        id="no-containers",
    ),
    pytest.param(
        with_spec({"type": "jupyter"}), "spec.template", "Required value", id="no-template"
    ),
    pytest.param(
        notebook(template={"spec": {}}), CONTAINERS, "Required value", id="no-containers-field"
    ),
    pytest.param(
        notebook(type="vscode"),
        "spec.type",
        'Unsupported value: "vscode": supported values: "jupyter", "rstudio"',
        id="type-unknown",
    ),
    pytest.param(
        notebook(runMode="stopped"),
        "spec.runMode",
        'Unsupported value: "stopped": supported values: "running", "paused"',
        id="run-mode-unknown",
    ),
    pytest.param(
        notebook(runMode="running", suspend=True),
        "spec.suspend",
        "spec.runMode and spec.suspend disagree",
        id="run-mode-running-but-suspended",
    ),
    pytest.param(
        notebook(runMode="paused", suspend=False),
        "spec.suspend",
        "spec.runMode and spec.suspend disagree",
        id="run-mode-paused-but-not-suspended",
    ),
    pytest.param(
        notebook(ssh={"enabled": True, "serviceType": "ExternalName", "authorized_keys": ["k"]}),
        "spec.ssh.serviceType",
        'Unsupported value: "ExternalName"',
        id="ssh-service-type-unknown",
    ),
    pytest.param(
        notebook(ssh={"enabled": True}),
        "spec.ssh.authorized_keys",
        "spec.ssh.authorized_keys must name at least one Secret when spec.ssh.enabled is true",
        id="ssh-enabled-without-keys",
    ),
    pytest.param(
        notebook(ssh={"enabled": True, "authorized_keys": []}),
        "spec.ssh.authorized_keys",
        "must name at least one Secret",
        id="ssh-enabled-with-empty-keys",
    ),
    pytest.param(
        notebook(ssh={"enabled": True, "authorized_keys": ["My_Key"]}),
        "spec.ssh.authorized_keys[0]",
        "spec.ssh.authorized_keys entries must be Secret names",
        id="ssh-key-not-a-secret-name",
    ),
    pytest.param(
        notebook(ssh={"enabled": True, "authorized_keys": ["k" * 254]}),
        "spec.ssh.authorized_keys[0]",
        "may not be more than 253",
        id="ssh-key-name-too-long",
    ),
    pytest.param(
        notebook(ssh={"enabled": True, "authorized_keys": ["alice", "bob", "alice"]}),
        "spec.ssh.authorized_keys[2]",
        'Duplicate value: "alice"',
        id="ssh-key-duplicate",
    ),
    pytest.param(
        notebook(template=gpu(requests=0)),
        GPU_PERCENT_REQUEST,
        WHOLE_PERCENT,
        id="gpu-percent-zero",
    ),
    pytest.param(
        notebook(template=gpu(requests=101, limits=101)),
        f"{CONTAINERS}[0].resources.limits[{GPU_PERCENT}]",
        WHOLE_PERCENT,
        id="gpu-percent-over-100",
    ),
    pytest.param(
        notebook(template=gpu(requests="0.5")),
        GPU_PERCENT_REQUEST,
        WHOLE_PERCENT,
        id="gpu-percent-fraction",
    ),
    pytest.param(
        notebook(template=gpu(requests=30, limits=50)),
        f"{CONTAINERS}[0].resources.requests",
        EXTENDED_EQUAL,
        id="gpu-percent-limit-differs-from-request",
    ),
    pytest.param(
        notebook(template=gpu(requests=1, limits=2, resource="nvidia-gpu")),
        f"{CONTAINERS}[0].resources.requests",
        EXTENDED_EQUAL,
        id="gpu-limit-differs-from-request",
    ),
    pytest.param(
        notebook(
            template={
                "spec": {
                    "initContainers": [
                        {
                            "name": "fetch",
                            "image": "busybox",
                            "resources": {"requests": {GPU_PERCENT: 150}},
                        }
                    ],
                    "containers": [{"name": "notebook", "image": "jupyter:1"}],
                }
            }
        ),
        f"spec.template.spec.initContainers[0].resources.requests[{GPU_PERCENT}]",
        WHOLE_PERCENT,
        id="init-container-gpu-percent-over-100",
    ),
    pytest.param(
        notebook(template=gpu(requests="0.5", resource="nvidia-gpu")),
        f"{CONTAINERS}[0].resources",
        "resources.requests and resources.limits of extended resources (such as"
        " tensorstack.dev/nvidia-gpu) must be whole numbers",
        id="gpu-fraction",
    ),
    pytest.param(
        notebook(template=container(resources={"requests": {"example.com/fpga": 1}})),
        f"{CONTAINERS}[0].resources.limits",
        "resources.limits must be given for every extended resource or hugepages in"
        " resources.requests",
        id="extended-resource-without-limit",
    ),
    pytest.param(
        notebook(template=container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": 1}})),
        f"{CONTAINERS}[0].resources.requests",
        "resources.requests must not exceed resources.limits",
        id="cpu-request-over-limit",
    ),
    pytest.param(
        notebook(scheduler={"t9kScheduler": {"queue": "Team_A"}}),
        "spec.scheduler.t9kScheduler.queue",
        "spec.scheduler.t9kScheduler.queue must be a queue name",
        id="queue-not-a-name",
    ),
    pytest.param(
        notebook(scheduler={"t9kScheduler": {"queue": ""}}),
        "spec.scheduler.t9kScheduler.queue",
        "must be a queue name",
        id="queue-empty",
    ),
    pytest.param(
        notebook(scheduler={"t9kScheduler": {}}),
        "spec.scheduler.t9kScheduler.queue",
        "Required value",
        id="queue-missing",
    ),
    pytest.param(
        notebook(
            scheduler={"t9kScheduler": {"queue": "default"}},
            template=pod_spec(schedulerName="volcano"),
        ),
        "spec.template.spec.schedulerName",
        "must be unset or t9k-scheduler when spec.scheduler.t9kScheduler is set",
        id="scheduler-name-conflicts-with-queue",
    ),
    pytest.param(
        notebook(template=pod_spec(restartPolicy="Never")),
        "spec.template.spec.restartPolicy",
        "spec.template.spec.restartPolicy must be Always",
        id="restart-policy-never",
    ),
    pytest.param(
        notebook(template=pod_spec(activeDeadlineSeconds=3600)),
        "spec.template.spec.activeDeadlineSeconds",
        "spec.template.spec.activeDeadlineSeconds can't be set",
        id="active-deadline",
    ),
    pytest.param(
        notebook(template=pod_spec(ephemeralContainers=[{"name": "debug", "image": "busybox"}])),
        "spec.template.spec.ephemeralContainers",
        "spec.template.spec.ephemeralContainers can't be set",
        id="ephemeral-containers",
    ),
    pytest.param(
        notebook(template={"spec": {"containers": [{"name": "TensorFlow", "image": "tf"}]}}),
        f"{CONTAINERS}[0].name",
        f"{CONTAINERS}[].name must be a DNS label",
        id="container-name-not-dns-label",
    ),
    pytest.param(
        notebook(template={"spec": {"containers": [{"name": "notebook"}]}}),
        f"{CONTAINERS}[0].image",
        "Required value",
        id="container-without-image",
    ),
    pytest.param(
        notebook(template=container(ports=[{"containerPort": "http"}])),
        f"{CONTAINERS}[0].ports[0].containerPort",
        'Invalid value: "string"',
        id="malformed-pod-spec-port",
    ),
    pytest.param(
        notebook(template=container(env="A=1")),
        f"{CONTAINERS}[0].env",
        "must be of type array",
        id="malformed-pod-spec-env",
    ),
    pytest.param(
        notebook(template=container(imagePullPolice="Always")),
        f"{CONTAINERS}[0].imagePullPolice",
        "unknown field",
        id="unknown-pod-spec-field",
    ),
    pytest.param(
        notebook(template=container(resources={"requests": {"memory": "1 GiB"}})),
        f"{CONTAINERS}[0].resources.requests.memory",
        "should match",
        id="malformed-quantity",
    ),
    pytest.param(
        notebook(template=container(resources={"requests": {"cpu": "-1"}})),
        f"{CONTAINERS}[0].resources.requests",
        "resources.requests must not be negative",
        id="negative-cpu",
    ),
    pytest.param(
        notebook(template=container(resources={"limits": {"memory": "-1Gi"}})),
        f"{CONTAINERS}[0].resources.limits",
        "resources.limits must not be negative",
        id="negative-memory",
    ),
    pytest.param(
        notebook(template=container(volumeMounts=[{"name": "data", "mountPath": "/data"}])),
        CONTAINERS,
        f"{CONTAINERS}[].volumeMounts[].name must name a volume in spec.template.spec.volumes",
        id="mount-of-an-undeclared-volume",
    ),
    pytest.param(
        notebook(template=container(env=[{"name": "NB_PREFIX", "value": "/mine/"}])),
        f"{CONTAINERS}[0].env",
        "NB_PREFIX and ENABLE_SSH_SERVER are set by the controller",
        id="user-set-nb-prefix",
    ),
    pytest.param(
        notebook(
            template={
                "spec": {
                    "containers": [
                        {
                            "name": "lab",
                            "image": "jupyter:1",
                            "env": [{"name": "ENABLE_SSH_SERVER", "value": "false"}],
                        }
                    ]
                }
            },
            ssh={"enabled": True},
        ),
        CONTAINERS,
        "NB_PREFIX and ENABLE_SSH_SERVER are set by the controller",
        id="user-set-ssh-flag-on-the-first-container",
    ),
    pytest.param(
        notebook(
            template={
                "spec": {
                    "containers": [
                        {
                            "name": "notebook",
                            "image": "jupyter:1",
                            "env": [{"name": f"V{i}", "value": "x"} for i in range(513)],
                        }
                    ]
                }
            }
        ),
        f"{CONTAINERS}[0].env",
        "must have at most 512 items",
        id="too-many-env-vars",
    ),
    pytest.param(
        notebook(template=container(resources={"requests": {"cpu": 0.5}})),
        f"{CONTAINERS}[0].resources.requests.cpu",
        "must be of type integer,string",
        id="unquoted-fractional-quantity",
    ),
]


@pytest.mark.parametrize(("manifest", "field", "message"), CASES)
def test_invalid_notebook_is_rejected(
    cluster: Cluster, rejection_namespace: str, manifest: Manifest, field: str, message: str
) -> None:
    result = apply(cluster, rejection_namespace, manifest)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    errors = result.stderr
    assert f"{field}:" in errors or f'"{field}"' in errors, errors
    assert message in errors, errors
    stored = cluster.kubectl("get", "notebooks", "-n", rejection_namespace, "-o", "name")
    assert stored.stdout == ""
