"""Controller subprocesses whose JSON output lines are collected with arrival times."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from notebook_controller.runtime.objects import JsonDict

ROOT = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, module: str, args: Sequence[str]) -> None:
        self.lines: list[tuple[float, JsonDict]] = []
        self._lock = threading.Lock()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.popen.stdout, self.popen.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = {"event": "unparsed", "text": line.rstrip()}
            with self._lock:
                self.lines.append((time.monotonic(), parsed))

    def find(self, predicate: Callable[[JsonDict], bool]) -> list[tuple[float, JsonDict]]:
        with self._lock:
            return [(at, line) for at, line in self.lines if predicate(line)]

    def event_time(self, event: str) -> float | None:
        found = self.find(lambda line: line.get("event") == event)
        return found[0][0] if found else None

    def reconciled(self) -> set[str]:
        return {line["reconciled"] for _, line in self.find(lambda line: "reconciled" in line)}

    def wait_event(self, event: str, within: float) -> float:
        deadline = time.monotonic() + within
        while (at := self.event_time(event)) is None:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {event!r} within {within}s; output:\n{self.dump()}")
            time.sleep(0.05)
        return at

    def signal(self, signum: signal.Signals) -> None:
        self.popen.send_signal(signum)

    def wait_exit(self, within: float) -> int:
        code = self.popen.wait(timeout=within)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)

    def dump(self) -> str:
        with self._lock:
            return "\n".join(json.dumps(line) for _, line in self.lines[-40:])
