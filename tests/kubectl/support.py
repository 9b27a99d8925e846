"""Checks on `kubectl notebook` runs, as a user reads them."""

from __future__ import annotations

import subprocess


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    )
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line of a command that must have failed with exit 1."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]
