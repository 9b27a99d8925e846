"""Run mode, template changes, healing, deletion, long names, unschedulable pods.

Crash loops and failed pulls are on the real node: tests/e2e/test_real_node.py."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.controller import ControllerProcess, seed
from tests.kube import Cluster, condition, get, items, wait_condition, wait_for, warning_events

NB = "notebook-sample"
STS = "managed-notebook-notebook-sample"
POD = f"{STS}-0"
HTTP = "managed-notebook-http-notebook-sample"
MANAGED = "-l=app.kubernetes.io/managed-by=notebook-controller"


def notebook(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "Notebook",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "notebook", "image": "t9kpublic/jupyter:1"}]}
            },
            **spec,
        },
    }
    return json.dumps(body)


def patch(cluster: Cluster, namespace: str, kind: str, name: str, body: Any) -> None:
    cluster.kubectl("-n", namespace, "patch", kind, name, "--type=merge", "-p", json.dumps(body))


def test_pause_and_resume_keep_services_and_volumes(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    # a statically bound volume, like the `workingdir` PVC of a real notebook
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{namespace}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": f"/tmp/{namespace}"},
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": "workingdir"},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "workingdir"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": f"pv-{namespace}",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    template = {
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "t9kpublic/jupyter:1",
                    "volumeMounts": [{"name": "workingdir", "mountPath": "/t9k/mnt"}],
                }
            ],
            "volumes": [
                {"name": "workingdir", "persistentVolumeClaim": {"claimName": "workingdir"}}
            ],
        }
    }
    cluster.apply(notebook(NB, template=template), namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True")
    try:
        patch(cluster, namespace, "notebook", NB, {"spec": {"runMode": "paused"}})
        wait_for(
            lambda: get(cluster, namespace, "pod", POD) is None, timeout=90, message="pod gone"
        )
        wait_condition(cluster, namespace, NB, "Suspended", "True", "Suspended")

        # the status follows the pod's deletion (a child's event: within its batch period)
        def without_pod() -> dict[str, Any] | None:
            found = get(cluster, namespace, "notebook", NB)
            return found if found is not None and "pod" not in found["status"] else None

        paused = wait_for(without_pod, timeout=10, message="the status still shows the pod")
        assert paused["status"]["phase"] == "Suspended"
        assert condition(paused, "Ready")["status"] == "False"
        assert condition(paused, "Suspended")["reason"] == "Suspended"
        sts = get(cluster, namespace, "statefulset", STS)
        assert sts is not None and sts["spec"]["replicas"] == 0
        assert get(cluster, namespace, "service", HTTP) is not None
        assert get(cluster, namespace, "pvc", "workingdir") is not None

        patch(cluster, namespace, "notebook", NB, {"spec": {"runMode": "running"}})
        resumed = wait_condition(cluster, namespace, NB, "Ready", "True")
        assert condition(resumed, "Suspended")["status"] == "False"
        pod = get(cluster, namespace, "pod", POD)
        assert pod is not None
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["workingdir"]

        # `suspend: true` means the same as runMode paused
        patch(cluster, namespace, "notebook", NB, {"spec": {"runMode": None, "suspend": True}})
        wait_condition(cluster, namespace, NB, "Suspended", "True")
        wait_for(
            lambda: get(cluster, namespace, "pod", POD) is None, timeout=90, message="pod gone"
        )
    finally:
        cluster.kubectl("delete", "pv", f"pv-{namespace}", "--wait=false", check=False)


def test_a_template_change_rolls_the_pod(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    cluster.apply(seed("notebook-example.yaml"), namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True")
    before = get(cluster, namespace, "pod", POD)
    assert before is not None
    template = {"spec": {"containers": [{"name": "tensorflow", "image": "t9kpublic/other:2"}]}}
    patch(cluster, namespace, "notebook", NB, {"spec": {"template": template}})

    def rolled() -> dict[str, Any] | None:
        pod = get(cluster, namespace, "pod", POD)
        if pod and pod["metadata"]["uid"] != before["metadata"]["uid"]:
            return pod
        return None

    pod = wait_for(rolled, timeout=120, message="a new pod")
    assert pod["spec"]["containers"][0]["image"] == "t9kpublic/other:2"
    nb = wait_condition(cluster, namespace, NB, "Ready", "True")
    assert nb["status"]["pod"]["reference"]["uid"] == pod["metadata"]["uid"]
    assert nb["status"]["observedGeneration"] == nb["metadata"]["generation"]


def test_tampered_children_are_restored(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    ssh = {"enabled": True, "serviceType": "NodePort", "authorized_keys": ["k"]}
    cluster.apply(notebook(NB, ssh=ssh), namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True")
    ssh_service = "managed-notebook-ssh-notebook-sample"
    host_key = "managed-notebook-hostkey-notebook-sample"

    def comes_back(kind: str, name: str, old: dict[str, Any]) -> None:
        wait_for(
            lambda: (
                (new := get(cluster, namespace, kind, name)) is not None
                and new["metadata"]["uid"] != old["metadata"]["uid"]
            ),
            timeout=60,
            message=f"{kind} {name} to come back",
        )

    # deleted children come back
    for kind, name in (("statefulset", STS), ("service", HTTP), ("service", ssh_service)):
        old = get(cluster, namespace, kind, name)
        assert old is not None
        cluster.kubectl("-n", namespace, "delete", kind, name)
        comes_back(kind, name, old)
    # the host-key Secret isn't watched (Secrets are not read): it comes back, with a new key,
    # for the next pod, which would not start without it
    old_key = get(cluster, namespace, "secret", host_key)
    assert old_key is not None
    cluster.kubectl("-n", namespace, "delete", "secret", host_key)
    # (the StatefulSet deleted above may still be re-making its pod: none to delete then)
    cluster.kubectl("-n", namespace, "delete", "pod", POD, "--wait=false", "--ignore-not-found")
    comes_back("secret", host_key, old_key)

    # owned fields edited by hand are put back; fields we don't own are left alone
    patch(cluster, namespace, "statefulset", STS, {"spec": {"replicas": 3}})
    patch(
        cluster,
        namespace,
        "service",
        HTTP,
        {
            "spec": {"ports": [{"port": 80, "targetPort": 9999, "name": "http"}]},
            "metadata": {"labels": {"team": "ml"}},
        },
    )
    patch(cluster, namespace, "service", ssh_service, {"spec": {"type": "ClusterIP"}})

    def restored() -> bool:
        sts = get(cluster, namespace, "statefulset", STS)
        http = get(cluster, namespace, "service", HTTP)
        ssh = get(cluster, namespace, "service", ssh_service)
        return bool(
            sts
            and sts["spec"]["replicas"] == 1
            and http
            and http["spec"]["ports"][0]["targetPort"] == "http"
            and ssh
            and ssh["spec"]["type"] == "NodePort"
        )

    wait_for(restored, timeout=60, message="owned fields restored")
    http = get(cluster, namespace, "service", HTTP)
    assert http is not None and http["metadata"]["labels"]["team"] == "ml"

    env_patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "/x/"}
    ]
    cluster.kubectl(
        "-n", namespace, "patch", "statefulset", STS, "--type=json", "-p", json.dumps(env_patch)
    )

    def env_restored() -> bool:
        sts = get(cluster, namespace, "statefulset", STS)
        env = (
            {
                e["name"]: e.get("value")
                for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            if sts
            else {}
        )
        return str(env.get("NB_PREFIX", "")).startswith("/t9k/notebooks/")

    wait_for(env_restored, timeout=60, message="NB_PREFIX restored")
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=180)


def test_deleting_the_notebook_leaves_nothing_behind(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    cluster.apply(notebook(NB, ssh={"enabled": True, "authorized_keys": ["k"]}), namespace)
    wait_condition(cluster, namespace, NB, "Ready", "True")
    assert len(items(cluster, namespace, "services", MANAGED)) == 2
    cluster.kubectl("-n", namespace, "delete", "notebook", NB, "--timeout=60s")

    def all_gone() -> bool:
        return all(
            not items(cluster, namespace, kind, MANAGED)
            for kind in ("statefulsets", "services", "secrets", "pods")
        )

    wait_for(all_gone, timeout=120, message="garbage collection of every child")


def test_longest_name(cluster: Cluster, namespace: str, controller: ControllerProcess) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    cluster.apply(
        notebook(name, ssh={"enabled": True, "serviceType": "NodePort", "authorized_keys": ["k"]}),
        namespace,
    )
    nb = wait_condition(cluster, namespace, name, "Ready", "True")
    assert nb["status"]["url"].endswith(f"/name/{name}/lab")
    services = items(cluster, namespace, "services", MANAGED)
    assert len(services) == 2
    assert all(len(s["metadata"]["name"]) <= 63 for s in services)
    [sts] = items(cluster, namespace, "statefulsets", MANAGED)
    assert len(sts["metadata"]["name"]) <= 52
    pod = get(cluster, namespace, "pod", nb["status"]["pod"]["reference"]["name"])
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert nb["status"]["ssh"]["nodePort"] > 0


def test_unschedulable_pod_surfaces_on_the_notebook(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    template = {
        "spec": {
            "containers": [
                {"name": "notebook", "image": "j:1", "resources": {"requests": {"cpu": "100000"}}}
            ]
        }
    }
    cluster.apply(notebook(NB, template=template), namespace)
    nb = wait_condition(cluster, namespace, NB, "Ready", "False", "Unschedulable")
    assert "Insufficient cpu" in condition(nb, "Ready")["message"]
    assert nb["status"]["phase"] == "Pending"
    wait_for(
        lambda: [
            e for e in warning_events(cluster, namespace, NB) if e["reason"] == "Unschedulable"
        ],
        timeout=30,
        message="an Unschedulable Warning event on the notebook",
    )
    # fixing the template rolls the stuck pod (podManagementPolicy Parallel)
    patch(
        cluster,
        namespace,
        "notebook",
        NB,
        {"spec": {"template": {"spec": {"containers": [{"name": "notebook", "image": "j:1"}]}}}},
    )
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=180)
    assert (
        len([e for e in warning_events(cluster, namespace, NB) if e["reason"] == "Unschedulable"])
        == 1
    )


def test_a_template_the_api_server_refuses_is_reported_and_heals(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    # passes the CRD's schema, but the StatefulSet (pod) validation refuses the port: 422
    containers = [
        {"name": "notebook", "image": "t9kpublic/jupyter:1"},
        {"name": "sidecar", "image": "busybox:1", "ports": [{"containerPort": 70000}]},
    ]
    cluster.apply(notebook(NB, template={"spec": {"containers": containers}}), namespace)
    nb = wait_condition(cluster, namespace, NB, "Ready", "False", "InvalidTemplate")
    message = condition(nb, "Ready")["message"]
    assert message.startswith("The API server refused the notebook's StatefulSet:"), message
    assert "must be between 1 and 65535" in message and message.endswith("(fix spec.template)")
    assert nb["status"]["phase"] == "Failed"
    assert get(cluster, namespace, "statefulset", STS) is None
    wait_for(
        lambda: [
            e for e in warning_events(cluster, namespace, NB) if e["reason"] == "InvalidTemplate"
        ],
        timeout=30,
        message="an InvalidTemplate Warning event",
    )
    # fixed by the user: created, and Ready
    patch(
        cluster,
        namespace,
        "notebook",
        NB,
        {"spec": {"template": {"spec": {"containers": containers[:1]}}}},
    )
    wait_condition(cluster, namespace, NB, "Ready", "True", timeout=120)
    events = [e for e in warning_events(cluster, namespace, NB) if e["reason"] == "InvalidTemplate"]
    assert len(events) == 1 and events[0]["count"] == 1
