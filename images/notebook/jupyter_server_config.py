# System-wide Jupyter Server settings of the notebook image (/etc/jupyter). The command line in
# start-notebook.sh sets the address, NB_PREFIX, root dir and authentication; a user's own
# ~/.jupyter/jupyter_server_config.py (HOME=/t9k/mnt) is read after this file. The extension
# nbctl_user_activity is enabled by
# /opt/notebook/etc/jupyter/jupyter_server_config.d/nbctl_user_activity.json.
import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

# Terminals run a login bash (PATH from /etc/profile.d/notebook.sh) in the working directory.
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash", "-l"]}

# TensorBoard from the JupyterLab launcher, proxied at <NB_PREFIX>tensorboard/ and reading
# event files under $TENSORBOARD_LOGDIR (default: the whole working directory).
c.ServerProxy.servers = {
    "tensorboard": {
        "command": [
            "tensorboard",
            "--logdir",
            os.environ.get("TENSORBOARD_LOGDIR", "/t9k/mnt"),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--reload_interval",
            "30",
        ],
        "timeout": 120,
        "absolute_url": False,
        "new_browser_tab": False,
        "launcher_entry": {"enabled": True, "title": "TensorBoard"},
    }
}
