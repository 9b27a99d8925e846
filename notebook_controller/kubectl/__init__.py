"""`kubectl notebook`: a kubectl plugin for people who use notebooks from a terminal and an IDE.

Installed with the package as the `kubectl-notebook` console script (kubectl runs any
`kubectl-<name>` on PATH as `kubectl <name>`). It talks to the API server with the controller's
raw client (`runtime.kube`) and takes child object names from `builders` (one source for naming
rules); it imports nothing of the controller's server (reconcilers, wiring, manager).
"""
