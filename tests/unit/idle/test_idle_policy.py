"""The policy ConfigMap: defaults, durations, selectors, and errors an admin can act on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notebook_controller.idle.policy import (
    OPT_OUT_ANNOTATION,
    IdlePolicy,
    PolicyError,
    format_duration,
    parse_duration,
    policy_from_data,
)


def test_defaults_are_the_products() -> None:
    policy = policy_from_data({})
    assert policy.enabled
    assert policy.idle_timeout == timedelta(hours=1)
    assert policy.reclaim_grace == timedelta(hours=24)
    assert policy.reclaim_after == timedelta(hours=25)
    assert policy.probe_interval == timedelta(minutes=5)
    assert not policy.allow_opt_out
    assert policy.covers_namespace({}) and policy.covers_namespace({"any": "thing"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("24h", 86400),
        ("1h30m", 5400),
        ("2m30s", 150),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("86400", 86400),
        (" 300 ", 300),
        (300, 300),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 30m", "30m1", "-5m", "1d", "m5", "1h-"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(PolicyError, match="not a duration"):
        parse_duration(text)


def test_format_duration_round_trips_for_messages() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(seconds=2)) == "2s"
    assert format_duration(timedelta(hours=24)) == "24h"


def test_full_configmap() -> None:
    policy = policy_from_data(
        {
            "enabled": "false",
            "idleTimeout": "2h",
            "reclaimGrace": "48h",
            "probeInterval": "1m",
            "probeTimeout": "3s",
            "reclaimUnreachable": "no",
            "allowOptOut": "true",
            "namespaceSelector": (
                "matchLabels: {team: ml}\n"
                "matchExpressions:\n"
                "- {key: tier, operator: NotIn, values: [prod]}\n"
            ),
        }
    )
    assert not policy.enabled and not policy.reclaim_unreachable and policy.allow_opt_out
    assert policy.reclaim_after == timedelta(hours=50)
    assert policy.probe_timeout == timedelta(seconds=3)
    assert policy.covers_namespace({"team": "ml"})
    assert policy.covers_namespace({"team": "ml", "tier": "dev"})
    assert not policy.covers_namespace({"team": "ml", "tier": "prod"})
    assert not policy.covers_namespace({"team": "web"})


def test_t9ks_own_policy_is_refused_with_the_keys_that_give_t9ks_behaviour() -> None:
    # T9k: idleTimeout 86400 = paused after a day without activity. Read with our meaning it
    # would pause after two days (Idle after 24h, then 24h of reclaimGrace): refused instead.
    with pytest.raises(PolicyError) as refused:
        policy_from_data({"scanInterval": "300", "idleTimeout": "86400"})
    assert str(refused.value).startswith("idleTimeout: with T9k's scanInterval this reads as")
    assert "write idleTimeout: 1h and reclaimGrace: 23h for T9k's behaviour" in str(refused.value)
    # what the message says to write means what T9k meant
    policy = policy_from_data({"scanInterval": "300", "idleTimeout": "1h", "reclaimGrace": "23h"})
    assert policy.probe_interval == timedelta(minutes=5)
    assert policy.reclaim_after == timedelta(hours=24)


def test_plain_seconds_without_t9ks_scan_interval_keep_our_meaning() -> None:
    policy = policy_from_data({"probeInterval": "300", "idleTimeout": "7200"})
    assert policy.idle_timeout == timedelta(hours=2)
    assert policy.reclaim_after == timedelta(hours=26)


@pytest.mark.parametrize(
    ("expression", "labels", "matches"),
    [
        ("{key: gpu, operator: Exists}", {"gpu": ""}, True),
        ("{key: gpu, operator: Exists}", {}, False),
        ("{key: gpu, operator: DoesNotExist}", {}, True),
        ("{key: tier, operator: In, values: [dev, test]}", {"tier": "test"}, True),
        ("{key: tier, operator: In, values: [dev, test]}", {}, False),
        ("{key: tier, operator: NotIn, values: [prod]}", {}, True),
    ],
)
def test_selector_operators(expression: str, labels: dict[str, str], matches: bool) -> None:
    policy = policy_from_data({"namespaceSelector": f"matchExpressions: [{expression}]"})
    assert policy.covers_namespace(labels) is matches


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"idleTimeout": "an hour"}, "idleTimeout: 'an hour' is not a duration"),
        ({"idleTimout": "1h"}, "idleTimout: unknown key"),
        ({"enabled": "maybe"}, "enabled: Input should be a valid boolean"),
        ({"idleTimeout": "0s"}, "idleTimeout must be positive"),
        ({"probeInterval": "0"}, "probeInterval must be positive"),
        ({"namespaceSelector": "matchLabels: [unclosed"}, "namespaceSelector: not valid YAML"),
        (
            {"namespaceSelector": "matchExpressions: [{key: a, operator: In}]"},
            "operator In needs values",
        ),
        ({"namespaceSelector": "matchExpressions: [{key: a, operator: Near}]"}, "operator"),
        ({"scanInterval": "5m", "probeInterval": "1m"}, "given twice"),
    ],
)
def test_bad_configmaps_name_the_key_and_the_problem(data: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_data(data)


def test_opt_out_only_where_the_policy_allows_it() -> None:
    annotations = {OPT_OUT_ANNOTATION: "disabled"}
    assert not IdlePolicy().opted_out(annotations)
    assert IdlePolicy(allowOptOut=True).opted_out(annotations)
    assert not IdlePolicy(allowOptOut=True).opted_out({OPT_OUT_ANNOTATION: "enabled"})
