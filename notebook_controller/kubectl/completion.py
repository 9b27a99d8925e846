"""Completion: one engine, cobra's `__complete` protocol (candidates, then `:<directive>`),
used by kubectl's plugin completion (`kubectl_complete-notebook`) and by the bash/zsh scripts
of `kubectl notebook completion`. Notebook names come from the cluster."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Final

from notebook_controller.kubectl.connection import Target
from notebook_controller.reconcilers.notebooks import NOTEBOOKS
from notebook_controller.runtime.kinds import NAMESPACES

NO_FILE_COMPLETION: Final = 4  # cobra's ShellCompDirectiveNoFileComp
_TAKES_NAME: Final = frozenset(
    {"describe", "open", "ssh", "ssh-config", "pause", "resume", "logs", "delete"}
)
_HIDDEN: Final = frozenset({"ssh-proxy", "ls"})

_BASH: Final = r"""# kubectl notebook completion (bash): source <(kubectl notebook completion bash)
_kubectl_notebook() {
    local IFS=$'\n'
    local found
    found=$(kubectl-notebook __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
    COMPREPLY=($(printf '%s\n' "$found" | grep -v '^:'))
}
complete -F _kubectl_notebook kubectl-notebook
"""
_ZSH_HEAD: Final = "autoload -U +X bashcompinit && bashcompinit\n"


def script(shell: str) -> str:
    return (_ZSH_HEAD if shell == "zsh" else "") + _BASH.rstrip("\n")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse offers no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def _flag_value(words: Sequence[str], *names: str) -> str | None:
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                return words[index + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


async def _names(words: Sequence[str], namespaces: bool) -> list[str]:
    target = Target(
        kubeconfig=_flag_value(words, "--kubeconfig"),
        context=_flag_value(words, "--context"),
        namespace=_flag_value(words, "-n", "--namespace"),
    )
    async with await target.client() as client:
        if namespaces:
            found = await client.list(NAMESPACES)
        else:
            found = await client.list(NOTEBOOKS, target.resolved_namespace())
    return [item["metadata"]["name"] for item in found.get("items") or []]


def candidates(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """What may come at the last word of `words` (the words after `notebook`)."""
    *before, current = list(words) or [""]
    subcommands = _subcommands(parser)
    command = next((w for w in before if w in subcommands), None)
    previous = before[-1] if before else ""
    if previous in ("-o", "--output"):
        options = ["json", "yaml", "wide"]
    elif previous == "--dry-run":
        options = ["none", "client", "server"]
    elif previous in ("-n", "--namespace"):
        options = _cluster_names(before, namespaces=True)
    elif current.startswith("-"):
        options = _flags(subcommands[command] if command else parser)
    elif command is None:
        options = [name for name in subcommands if name not in _HIDDEN]
    elif command == "completion":
        options = ["bash", "zsh"]
    elif command in _TAKES_NAME and _positionals(subcommands[command], before, command) == 0:
        options = _cluster_names(before, namespaces=False)
    else:
        options = []
    return [option for option in options if option.startswith(current)]


def _positionals(sub: argparse.ArgumentParser, words: Sequence[str], command: str) -> int:
    """How many positional arguments follow `command` (flags and their values skipped)."""
    switches = {o for a in sub._actions if a.nargs == 0 for o in a.option_strings}
    count, skip = 0, False
    for word in words[list(words).index(command) + 1 :]:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = "=" not in word and word not in switches
        else:
            count += 1
    return count


def _cluster_names(words: Sequence[str], *, namespaces: bool) -> list[str]:
    try:
        return asyncio.run(_names(words, namespaces))
    except Exception:  # completion must never print errors into the user's command line
        return []


def complete_command(words: Sequence[str]) -> int:
    from notebook_controller.kubectl.cli import parser  # the parser imports this module

    for option in candidates(parser(), words):
        print(option)
    print(f":{NO_FILE_COMPLETION}")
    return 0
