"""structlog configuration: JSON in-cluster, readable on a terminal; one event per line.

Context such as `notebook=ns/name`, `reconciler=` and `reconcile_id=` is bound with contextvars
(see `bound`) and lands on every line logged within it, standard-library loggers included.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from structlog.contextvars import bound_contextvars
from structlog.typing import Processor

__all__ = ["bound", "configure_logging"]

bound = bound_contextvars
"""`with bound(notebook="ns/nb"): ...` adds the fields to every log line inside."""

# Libraries that are chatty at INFO and whose useful messages are warnings anyway.
_QUIET_LIBRARIES = ("aiohttp.access", "kubernetes_asyncio")


class _LineWriter:
    """structlog's last logger: writes each rendered line to stderr (looked up at each call, as
    pytest's capture replaces it), flushed at once. `name` is the module's (`logger` field)."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(log_format: Literal["json", "console"] = "json", level: str = "info") -> None:
    """The controller's own lines go straight from structlog to stderr (a line below the level
    costs one call; one logged costs a third of what the standard library's record, handler
    and formatter add); other libraries' records take the standard library's way to the same
    renderer."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if log_format == "json":
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_LineWriter,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
