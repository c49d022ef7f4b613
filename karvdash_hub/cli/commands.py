"""What karvdashctl's command modules share: commands declared as a table
(name, help, arguments, run), the runs most commands are made of (a list
shown as a table, a document printed as it is, a removal), and the
refusals of the command line.

A run is ``run(client, args, out) -> exit code``; it raises
:class:`UsageProblem` for a command line that asks for something impossible
and lets the client's errors through (``main`` turns both into exit codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

from .client import DashboardClient
from .output import Output

Run = Callable[[DashboardClient, object, Output], int]


class UsageProblem(Exception):
    """The command line asks for something impossible."""


@dataclass(frozen=True)
class Argument:
    names: tuple[str, ...]
    options: dict


def argument(*names: str, **options) -> Argument:
    """An argument of a command, as ``argparse``'s ``add_argument`` takes it."""
    return Argument(names, options)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Run
    arguments: tuple[Argument, ...] = ()
    # the text of `karvdashctl <name> --help`; by default the help as a sentence
    description: str = field(default="")


def register_commands(subparsers, commands: list[Command]) -> None:
    for command in commands:
        parser = subparsers.add_parser(
            command.name, help=command.help, description=command.description or f"{command.help[0].upper()}{command.help[1:]}."
        )
        for arg in command.arguments:
            parser.add_argument(*arg.names, **arg.options)
        parser.set_defaults(run=command.run)


def quote_name(name: str) -> str:
    """One name in an API path (a slash in it stays part of the name)."""
    return quote(name, safe="")


def parse_values(pairs: list[str]) -> dict[str, str]:
    """``NAME=web MESSAGE=hi there`` -> {"NAME": "web", "MESSAGE": "hi there"}."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageProblem(f"{pair!r}: give variables as NAME=value")
        if name in values:
            raise UsageProblem(f"{name} is given twice")
        values[name] = value
    return values


# --- the usual runs ----------------------------------------------------------------------


def show_list(client: DashboardClient, out: Output, path: str, headers: list[str], row, items=None) -> int:
    """GET ``path``: the answer with --json, else a table of ``row(item)``
    for each of ``items(answer)`` (the answer itself by default)."""
    answer = client.request("GET", path)
    if out.json:
        out.data(answer)
        return 0
    out.table(headers, [row(item) for item in (items(answer) if items else answer)])
    return 0


def show_text(client: DashboardClient, out: Output, path: str, key: str) -> int:
    """GET ``path``: the answer with --json, else its ``key`` text as it is
    (a YAML document), ending in one newline."""
    answer = client.request("GET", path)
    if out.json:
        out.data(answer)
        return 0
    text = answer[key]
    print(text, end="" if text.endswith("\n") else "\n", file=out.stream)
    return 0


def remove(client: DashboardClient, out: Output, path: str, result: dict, text: str) -> int:
    """DELETE ``path``, then say ``text`` (``result`` with --json)."""
    client.request("DELETE", path)
    out.done(result, text)
    return 0
