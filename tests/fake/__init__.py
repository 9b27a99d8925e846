"""An in-memory API server for running reconcilers in-process (see api.py)."""
