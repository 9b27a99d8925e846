"""`python -m notebook_controller.console` (also `notebook-console`): the console and gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from notebook_controller.console.server import build_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="notebook-console", description="the notebook console and gateway (docs/console.md)"
    )
    build_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
