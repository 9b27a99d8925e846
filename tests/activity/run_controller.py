"""`python -m tests.activity.run_controller run ...`: the controller with the idle reclaimer
registered, whether or not the default wiring registers it already (then it is used as is)."""

from __future__ import annotations

import asyncio
import os
import sys

from notebook_controller import wiring
from notebook_controller.cli import run
from notebook_controller.logging import configure_logging
from notebook_controller.reconcilers import idle
from notebook_controller.reconcilers.common import NOTEBOOKS, PODS
from notebook_controller.runtime.events import EventRecorder
from notebook_controller.runtime.informer import Informer
from notebook_controller.runtime.kube import KubeClient, ResourceKind
from notebook_controller.runtime.manager import Manager
from notebook_controller.settings import Settings, build_parser


def _informer(manager: Manager, kind: ResourceKind) -> Informer:
    return next(i for i in manager.all_informers() if i.kind == kind)


def build(manager: Manager, client: KubeClient, settings: Settings) -> None:
    wiring.build(manager, client, settings)
    if any(controller.name == "idle" for controller in manager.controllers):
        return
    idle.register(
        manager,
        client,
        settings,
        notebooks=_informer(manager, NOTEBOOKS),
        pods=_informer(manager, PODS),
        recorder=EventRecorder(client, wiring.COMPONENT),
    )


def main() -> int:
    args = build_parser().parse_args(sys.argv[2:])
    settings = Settings.from_sources(vars(args), os.environ)
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(run(settings, build))


if __name__ == "__main__":
    sys.exit(main())
