"""Registers the notebook informers and controllers with the manager."""

from __future__ import annotations

from notebook_controller.runtime.kube import KubeClient
from notebook_controller.runtime.manager import Manager
from notebook_controller.settings import Settings


def build(manager: Manager, client: KubeClient, settings: Settings) -> None:
    """Nothing registered yet: the manager serves health and metrics only."""
