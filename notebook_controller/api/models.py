"""Typed model of the Notebook resource (tensorstack.dev/v1beta1).

The CRD under deploy/ is generated from these classes (`make manifests`): every field's docstring
becomes its description in the schema, so `kubectl explain` shows it. Keep them user-facing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUP = "tensorstack.dev"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Notebook"
PLURAL = "notebooks"
SINGULAR = "notebook"
SHORT_NAMES = ["nb"]

# Labels and annotations the controller reads or writes.
NAME_LABEL = "notebook.tensorstack.dev/name"
QUEUE_LABEL = "scheduler.tensorstack.dev/queue"
RECLAIMED_AT_ANNOTATION = "notebook.tensorstack.dev/reclaimed-at"

GPU_PERCENT_RESOURCE = "tensorstack.dev/nvidia-gpu-percent"
GPU_RESOURCE = "tensorstack.dev/nvidia-gpu"
T9K_SCHEDULER_NAME = "t9k-scheduler"

CONDITION_READY = "Ready"
CONDITION_SUSPENDED = "Suspended"
CONDITION_IDLE = "Idle"


class _Model(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )


class NotebookType(StrEnum):
    JUPYTER = "jupyter"
    RSTUDIO = "rstudio"


class RunMode(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"


class SSHServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class PodTemplate(_Model):
    """Template of the notebook's pod (no pod metadata: labels are set by the controller)."""

    spec: dict[str, Any]
    """Specification of the notebook's pod: a full core/v1 PodSpec. The main container is the
    one named `notebook`, else the first one."""


class T9kScheduler(_Model):
    """Run the notebook's pod under the T9k Scheduler."""

    queue: str
    """Name of the T9k Scheduler queue the pod joins (label `scheduler.tensorstack.dev/queue`).
    A pod's queue can't change after creation, so this can't change once set."""


class SchedulerSpec(_Model):
    """Which scheduler runs the notebook's pod. Absent: the cluster's default scheduler."""

    t9k_scheduler: T9kScheduler | None = Field(default=None, alias="t9kScheduler")
    """Use the T9k Scheduler (schedulerName `t9k-scheduler`) with the given queue."""


class SSHSpec(_Model):
    """SSH access to the notebook: an sshd on port 2222 in the main container and a Service."""

    enabled: bool = False
    """Run an SSH server in the notebook and create a Service `managed-notebook-ssh-...` for
    it (targetPort 2222)."""

    service_type: SSHServiceType = Field(default=SSHServiceType.CLUSTER_IP, alias="serviceType")
    """Type of the SSH Service: ClusterIP (default), NodePort or LoadBalancer."""

    authorized_keys: list[str] = Field(default_factory=list)
    """Names of Secrets in the notebook's namespace holding SSH public keys (key
    `ssh-publickey`, T9k labels them `tensorstack.dev/resource: ssh`); mounted under
    `/t9k/authorized_keys/`. Required, non-empty, when SSH is enabled."""


class NotebookSpec(_Model):
    """Desired state of a Notebook."""

    type: NotebookType = NotebookType.JUPYTER
    """Kind of notebook server: `jupyter` (JupyterLab, the default) or `rstudio`. Only
    `jupyter` notebooks are reclaimed when idle."""

    run_mode: RunMode | None = Field(default=None, alias="runMode")
    """`running` (the default when absent) or `paused`: a paused notebook has no pod; its
    Services, Secrets and volumes are kept for resuming. Same meaning as `suspend`."""

    suspend: bool | None = None
    """Newer spelling of `runMode`: true means paused. When both are given they must agree."""

    template: PodTemplate
    """Template of the pod that runs the notebook server."""

    scheduler: SchedulerSpec | None = None
    """Scheduler for the notebook's pod (the T9k Scheduler and its queue)."""

    ssh: SSHSpec | None = None
    """SSH access to the notebook."""

    @property
    def paused(self) -> bool:
        """True when the user (or the idle reclaimer) asked for no pod."""
        return self.run_mode is RunMode.PAUSED or self.suspend is True

    @property
    def ssh_enabled(self) -> bool:
        return self.ssh is not None and self.ssh.enabled

    @property
    def queue(self) -> str | None:
        if self.scheduler is None or self.scheduler.t9k_scheduler is None:
            return None
        return self.scheduler.t9k_scheduler.queue


class Condition(_Model):
    """One aspect of the notebook's state."""

    type: str
    """`Ready`, `Suspended` or `Idle`."""

    status: str
    """`True`, `False` or `Unknown`."""

    reason: str | None = None
    """One CamelCase word saying why the condition has this status."""

    message: str = ""
    """Human-readable details."""

    last_transition_time: datetime | None = Field(default=None, alias="lastTransitionTime")
    """When the status last changed."""

    last_probe_time: datetime | None = Field(default=None, alias="lastProbeTime")
    """When the condition was last checked."""


class ObjectReference(_Model):
    """Reference to an object by name and UID."""

    name: str
    """Name of the object."""

    uid: str | None = None
    """UID of the object."""


class PodStatusSummary(_Model):
    """The notebook's pod."""

    reference: ObjectReference | None = None
    """Which pod runs the notebook."""

    phase: str | None = None
    """The pod's phase (Pending, Running, Succeeded, Failed, Unknown)."""


class SSHStatus(_Model):
    """How to reach the notebook's SSH server."""

    service_name: str | None = Field(default=None, alias="serviceName")
    """Name of the SSH Service."""

    port: int | None = None
    """Port of the SSH Service."""

    cluster_ip: str | None = Field(default=None, alias="clusterIp")
    """Cluster IP of the SSH Service."""

    node_port: int | None = Field(default=None, alias="nodePort")
    """Node port of the SSH Service (NodePort and LoadBalancer types)."""

    protocol: str | None = None
    """Protocol of the SSH Service port (TCP)."""

    last_ssh_client_activity: datetime | None = Field(default=None, alias="lastSshClientActivity")
    """Last time an SSH client was seen connected."""


class NotebookStatus(_Model):
    """Observed state of a Notebook."""

    phase: str | None = None
    """Pending, Running, Suspended or Failed."""

    url: str | None = None
    """Where the notebook's web UI is served."""

    pod: PodStatusSummary | None = None
    """The notebook's pod."""

    ssh: SSHStatus | None = None
    """The notebook's SSH access."""

    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Suspended and Idle conditions."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    """The spec generation the status describes."""

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class Notebook(_Model):
    """A JupyterLab (or RStudio) server run in the cluster."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: NotebookSpec
    status: NotebookStatus = Field(default_factory=NotebookStatus)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 0))
