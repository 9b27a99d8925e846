"""A jupyter_server extension: only what a user does counts as API activity.

jupyter_server's `api/status` reports `last_activity`, the latest of: any authenticated API
request (each one sets it when it finishes), kernel messages, and terminal input/output. An open
JupyterLab page polls the server while it is visible -- `api/kernels`, `api/sessions`,
`api/terminals` and the file browser's folder (`api/contents/...`) every 10 s, `api/kernelspecs`
and `api/me` every 61 s -- so an untouched tab left open in a browser sets `last_activity`
every 10 s and the notebook never looks idle (checked here with jupyter_server 2.21: one
`GET api/kernels` moves it). The pollers only pause while the page is hidden.

With this extension, read-only requests (GET, HEAD, OPTIONS) no longer count; requests that
change something still do: saving or autosaving an edited file, creating, renaming or deleting
one, starting, restarting or stopping a kernel or terminal, changing a setting, the workspace
layout JupyterLab saves when tabs are opened, closed or moved. Running cells (kernel messages)
and typing in a terminal count through the kernel and terminal activity, which this does not
touch. Merely reading a file or browsing folders does not count.

JupyterLab also PUTs its whole workspace (the layout) back to the server whenever a widget
re-saves its state: the file browser re-saves its column sizes after each 10 s refresh, so an
untouched tab sends the same workspace every 10 s. A workspace save whose `data` equals the
previous save's is therefore not activity either; a changed layout is.

Disable it with `jupyter server extension disable nbctl_user_activity` (as the notebook user)
or `--ServerApp.jpserver_extensions="{'nbctl_user_activity': False}"`.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WORKSPACES_API = "/lab/api/workspaces/"

_update_api_activity = APIHandler.update_api_activity
_last_workspace_data: dict[str, str] = {}  # request path -> the `data` it saved last


def _unchanged_workspace_save(handler: APIHandler) -> bool:
    request = handler.request
    if request.method != "PUT" or WORKSPACES_API not in request.path:
        return False
    try:
        data = json.dumps(json.loads(request.body or b"{}").get("data"), sort_keys=True)
    except (ValueError, AttributeError):
        return False
    previous = _last_workspace_data.get(request.path)
    _last_workspace_data[request.path] = data
    return previous == data


def _update_unless_read_only(self: APIHandler) -> None:
    if self.request.method in READ_ONLY_METHODS or _unchanged_workspace_save(self):
        return
    _update_api_activity(self)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbctl_user_activity"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    APIHandler.update_api_activity = _update_unless_read_only  # type: ignore[method-assign]
    serverapp.log.info(
        "nbctl_user_activity: read-only API requests (JupyterLab's polling) do not count as "
        "activity in api/status last_activity"
    )
