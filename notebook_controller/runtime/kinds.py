"""Every built-in Kubernetes kind the controller reads or writes, in one place. (The Notebook
kind, which the runtime knows nothing of, is
`notebook_controller.reconcilers.notebooks.NOTEBOOKS`.)"""

from __future__ import annotations

from typing import Final

from notebook_controller.runtime.kube import ResourceKind

STATEFULSETS: Final = ResourceKind("apps", "v1", "statefulsets", "StatefulSet")
SERVICES: Final = ResourceKind("", "v1", "services", "Service")
SECRETS: Final = ResourceKind("", "v1", "secrets", "Secret")
PODS: Final = ResourceKind("", "v1", "pods", "Pod")
CONFIGMAPS: Final = ResourceKind("", "v1", "configmaps", "ConfigMap")
NAMESPACES: Final = ResourceKind("", "v1", "namespaces", "Namespace", namespaced=False)
EVENTS: Final = ResourceKind("", "v1", "events", "Event")
LEASES: Final = ResourceKind("coordination.k8s.io", "v1", "leases", "Lease")
SUBJECT_ACCESS_REVIEWS: Final = ResourceKind(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False
)
SELF_SUBJECT_ACCESS_REVIEWS: Final = ResourceKind(
    "authorization.k8s.io",
    "v1",
    "selfsubjectaccessreviews",
    "SelfSubjectAccessReview",
    namespaced=False,
)
