"""Shell completion (`peftbench completion bash|zsh`), generated from the CLI's own parser so
it never drifts from it: commands, each command's options, the choices of its arguments, and
the shipped suite names after `run`; file names everywhere else."""

from __future__ import annotations

import argparse
from typing import Iterable

_FUNCTION = """\
# peftbench completion for {shell}: eval "$(peftbench completion {shell})" in your shell's rc file
{prelude}_peftbench() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" command="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in -*) ;; *) command="${{COMP_WORDS[i]}}"; break ;; esac
  done
  local options="" words=""
  case "$command" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}}
complete -o default -F _peftbench peftbench
"""

_ZSH_PRELUDE = "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(s for action in parser._actions for s in action.option_strings if s.startswith("--"))


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    """Words a positional argument accepts: its choices, or sub-commands."""
    words: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.choices:
            words += list(action.choices)
    return words


def _case(pattern: str, options: Iterable[str], words: Iterable[str]) -> str:
    return f'    {pattern}) options="{" ".join(options)}"; words="{" ".join(words)}" ;;'


def script(parser: argparse.ArgumentParser, shell: str, suites: Iterable[str]) -> str:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    cases = [_case('""', _options(parser), commands)]
    for name, sub in commands.items():
        words = _choices(sub) + (sorted(suites) if name == "run" else [])
        cases.append(_case(name, _options(sub), words))
    return _FUNCTION.format(shell=shell, prelude=_ZSH_PRELUDE if shell == "zsh" else "", cases="\n".join(cases))
