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


def configure_logging(log_format: Literal["json", "console"] = "json", level: str = "info") -> None:
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
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
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
    root.setLevel(level.upper())
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
