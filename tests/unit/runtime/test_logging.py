from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from notebook_controller.logs import bound, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_bound_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    logger = structlog.get_logger("test.json")
    with bound(notebook="ns/nb", reconciler="workload", reconcile_id="abc123"):
        logger.info("applied", changed=2)
    logger.debug("hidden below the level")
    logging.getLogger("thirdparty").warning("from the standard library")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["event"] == "applied"
    assert first["changed"] == 2
    assert (first["notebook"], first["reconciler"], first["reconcile_id"]) == (
        "ns/nb",
        "workload",
        "abc123",
    )
    assert first["level"] == "info" and first["logger"] == "test.json" and "timestamp" in first
    assert second["event"] == "from the standard library" and "notebook" not in second


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console", "debug")
    with bound(notebook="ns/nb"):
        structlog.get_logger("test.console").debug("probing")
    err = capsys.readouterr().err
    assert "probing" in err and "notebook=ns/nb" in err
    assert not err.lstrip().startswith("{")
