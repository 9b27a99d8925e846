"""Two controllers' CPU side by side: the controller of source tree A and of tree B, each on its
own N notebooks in its own namespace, at the same time (`make bench`'s controller run, without
the limit run and the steady minute).

Runs one after the other differ by a fifth on a shared machine, more than most changes are
worth; run at once, both see the same machine, and a pair differs by what the code does.

    git worktree add /tmp/before HEAD~1
    ln -s $PWD/.cluster /tmp/before/.cluster   # the bench reads the audit log there
    .venv/bin/python hack/bench_pair.py /tmp/before . -n 500 --rounds 3

Each tree's `hack/bench_cluster.py` drives its own controller (`python -m notebook_controller`
with that tree as the working directory). Needs the local cluster (`hack/cluster.sh up`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

QUIET_SECONDS = 10.0


def run_one(tree: Path, n: int) -> dict[str, Any]:
    """The controller part of tree's bench for n notebooks (in this process)."""
    spec = importlib.util.spec_from_file_location("bench_cluster", tree / "hack/bench_cluster.py")
    assert spec is not None and spec.loader is not None
    bench: Any = importlib.util.module_from_spec(spec)
    sys.modules["bench_cluster"] = bench
    spec.loader.exec_module(bench)

    async def no_limit(*_: object) -> dict[str, float]:
        return {"statefulsets_exist_s": 1.0, "pods_running_s": 1.0}

    def say(message: str) -> None:  # progress on stderr, tagged; stdout carries the result
        print(f"[{time.strftime('%H:%M:%S')}] {tree.name or tree}: {message}", file=sys.stderr)

    bench.run_limit = no_limit
    bench.say = say
    bench.STEADY_AFTER_SECONDS = 0
    data = asyncio.run(bench.bench([n], QUIET_SECONDS, False, 0))
    result: dict[str, Any] = data["results"][0]["controller"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path, metavar="TREE", help="A and B")
    parser.add_argument("-n", type=int, default=500, help="notebooks per controller")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # a child: one tree, its result as a JSON line on stdout
        print(json.dumps(run_one(args.one.resolve(), args.n)))
        return
    if len(args.trees) != 2:
        parser.error("two source trees, A and B")
    for tree in args.trees:
        if not (tree / "hack/bench_cluster.py").exists() or not (tree / ".cluster").exists():
            sys.exit(f"bench_pair: {tree} needs hack/bench_cluster.py and .cluster (a symlink)")
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}: {args.n} notebooks each, both at once", flush=True)
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--one", str(tree), "-n", str(args.n)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for tree in args.trees
        ]
        for tree, child in zip(args.trees, children, strict=True):
            out, _ = child.communicate()
            if child.returncode != 0:
                sys.exit(f"bench_pair: the run of {tree} failed (exit {child.returncode})")
            result = json.loads(out.strip().splitlines()[-1])
            print(
                f"  {tree!s:<24} CPU {result['cpu_s']:6.2f} s"
                f" ({result['cpu_ms_per_notebook']:.1f} ms/notebook),"
                f" StatefulSets {result['statefulsets_exist_s']:.2f} s,"
                f" Ready {result['ready_s']:.1f} s,"
                f" {result['writes_per_notebook']:.2f} writes/notebook,"
                f" peak RSS {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
