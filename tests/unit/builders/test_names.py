from __future__ import annotations

import re

import pytest

from notebook_controller.builders import names

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253: the longest legal name
NAMES = ["a", "notebook-sample", "0day", "my.dotted.nb", "x" * 63, "y" * 100, LONGEST]


@pytest.mark.parametrize("name", NAMES)
def test_children_names_are_valid_for_every_legal_notebook_name(name: str) -> None:
    for service in (names.http_service_name(name), names.ssh_service_name(name)):
        assert DNS_1035.match(service) and len(service) <= 63, service
    secret = names.host_key_secret_name(name)
    assert DNS_1035.match(secret) and len(secret) <= 63
    sts = names.statefulset_name(name)
    assert DNS_1035.match(sts) and len(sts) <= 52
    # the StatefulSet controller's pod label `<sts>-<revision hash of up to 10 chars>` fits
    assert len(f"{sts}-{'h' * 10}") <= 63
    pod = names.pod_name(name)
    assert DNS_1035.match(pod) and len(pod) <= 63
    label = names.name_label_value(name)
    assert LABEL_VALUE.match(label) and len(label) <= 63


def test_short_names_are_readable() -> None:
    assert names.http_service_name("notebook-sample") == "managed-notebook-http-notebook-sample"
    assert names.ssh_service_name("notebook-sample") == "managed-notebook-ssh-notebook-sample"
    assert names.statefulset_name("notebook-sample") == "managed-notebook-notebook-sample"
    assert names.pod_name("notebook-sample") == "managed-notebook-notebook-sample-0"
    assert names.name_label_value("notebook-sample") == "notebook-sample"


def test_names_that_need_shortening_are_deterministic_and_distinct() -> None:
    first, second = "z" * 100, "z" * 99 + "y"
    assert names.http_service_name(first) == names.http_service_name(first)
    assert names.http_service_name(first) != names.http_service_name(second)
    assert names.name_label_value(first) != names.name_label_value(second)
    # a dot and a dash must not collide once dots are replaced
    assert names.http_service_name("a.b") != names.http_service_name("a-b")
    assert names.statefulset_name(first).startswith("managed-notebook-zzz")


def test_child_labels_select_the_notebook() -> None:
    labels = names.child_labels("nb")
    assert labels == {
        "app.kubernetes.io/managed-by": "notebook-controller",
        "notebook.tensorstack.dev/name": "nb",
    }
