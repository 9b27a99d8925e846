"""A controller process for the leader-election tests.

Runs the real CLI path (settings, logging, manager, leader election) with a wiring that
reconciles the ConfigMaps of `--namespaces` and prints one JSON line per reconcile to stdout.
Usage: python -m tests.runtime.candidate [notebook-controller run flags]
"""

from __future__ import annotations

import json
import os
import sys

from notebook_controller.cli import run_in_loop
from notebook_controller.logs import configure_logging
from notebook_controller.runtime.controller import Controller
from notebook_controller.runtime.informer import Informer
from notebook_controller.runtime.kinds import CONFIGMAPS
from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.manager import Manager
from notebook_controller.runtime.reconcile import Request, Result
from notebook_controller.settings import Settings


class PrintingReconciler:
    name = "printer"

    async def reconcile(self, request: Request) -> Result:
        print(json.dumps({"reconciled": str(request)}), flush=True)
        return Result()


def build(manager: Manager, client: KubeClient, settings: Settings) -> None:
    informer = Informer(client, CONFIGMAPS, namespaces=settings.namespaces)
    controller = Controller("leader-test", PrintingReconciler(), workers=1)
    controller.watch_primary(informer)
    manager.add_controller(controller)


def main() -> int:
    settings = Settings.load(sys.argv[1:], os.environ)
    configure_logging(settings.log_format, settings.log_level)
    return run_in_loop(settings, build)


if __name__ == "__main__":
    sys.exit(main())
