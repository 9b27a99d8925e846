from __future__ import annotations

import pytest
from pydantic import ValidationError

from notebook_controller.cli import backlog_seconds
from notebook_controller.settings import Settings


def test_defaults_outside_a_cluster() -> None:
    settings = Settings.load([], {})
    assert settings.namespaces == []
    assert settings.workers == 8
    assert settings.io_batch_seconds == 0.1
    assert settings.leader_elect is False
    assert settings.lease_name == "notebook-controller"
    assert settings.health_address == "127.0.0.1:8081"
    assert settings.idle_policy_configmap == "notebook-controller-idle-policy"


def test_the_loops_pauses_end_once_a_key_waited_two_and_a_half_rounds_for_a_worker() -> None:
    assert backlog_seconds(Settings.load([], {})) == 0.25
    assert backlog_seconds(Settings.load(["--io-batch-seconds", "0.05"], {})) == 0.125


def test_in_cluster_listens_on_all_interfaces() -> None:
    settings = Settings.load([], {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert settings.health_address == "0.0.0.0:8081"


def test_environment_sets_typed_values() -> None:
    settings = Settings.load(
        [],
        {
            "NBC_NAMESPACES": "team-a, team-b,",
            "NBC_WORKERS": "12",
            "NBC_IO_BATCH_SECONDS": "0",
            "NBC_LEADER_ELECT": "true",
            "NBC_LOG_FORMAT": "console",
            "NBC_EXTERNAL_URL_BASE": "https://nb.example.org",
        },
    )
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.workers == 12
    assert settings.io_batch_seconds == 0
    assert settings.leader_elect is True
    assert settings.log_format == "console"
    assert settings.external_url_base == "https://nb.example.org"


def test_flags_win_over_environment() -> None:
    settings = Settings.load(
        ["--workers", "2", "--no-leader-elect", "--namespaces", "x"],
        {"NBC_WORKERS": "8", "NBC_LEADER_ELECT": "true", "NBC_NAMESPACES": "y"},
    )
    assert (settings.workers, settings.leader_elect, settings.namespaces) == (2, False, ["x"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],
        ["--log-format", "xml"],
        ["--log-level", "loud"],
        ["--io-batch-seconds", "2"],
        ["--io-batch-seconds", "-0.1"],
    ],
)
def test_invalid_values_are_rejected(argv: list[str]) -> None:
    with pytest.raises(ValidationError):
        Settings.load(argv, {})


def test_settings_are_immutable() -> None:
    settings = Settings.load([], {})
    with pytest.raises(ValidationError):
        settings.workers = 9
