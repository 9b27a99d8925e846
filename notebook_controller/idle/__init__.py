"""Idle reclamation's building blocks: activity probes (Jupyter HTTP, SSH via /proc/net/tcp),
the admin policy, and the pure timing rules. The reconciler that uses them is
`notebook_controller.reconcilers.idle`."""
