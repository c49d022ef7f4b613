"""``karvdashctl``: subcommands over the dashboard's REST API.

Each command module lists its commands in ``COMMANDS`` (name, help,
arguments and ``run(client, args, out) -> exit code``, see ``commands.py``):
files, services and templates, datasets, images.

Exit codes: 0 done; 1 the dashboard failed (5xx) or another error;
2 bad command line; 3 no configuration or the dashboard is unreachable;
4 not allowed (401/403: token, scope); 5 not found (404); 6 conflict (409,
e.g. the name exists); 7 other refusals (400, 413, 416, 507...); 141 the
output's reader went away (``karvdashctl ls | head``), quietly.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import datasetcommands, filecommands, imagecommands, servicecommands
from .client import APIProblem, DashboardClient
from .commands import UsageProblem, register_commands
from .connection import ConnectionProblem, find_connection
from .output import Output

COMMANDS = [*filecommands.COMMANDS, *servicecommands.COMMANDS, *datasetcommands.COMMANDS, *imagecommands.COMMANDS]

EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_FORBIDDEN, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_REFUSED = 1, 2, 3, 4, 5, 6, 7
# as a command killed by SIGPIPE
EXIT_BROKEN_PIPE = 128 + 13


def exit_code(status: int) -> int:
    if status in (401, 403):
        return EXIT_FORBIDDEN
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 409:
        return EXIT_CONFLICT
    if 400 <= status < 500 or status == 507:
        return EXIT_REFUSED
    return EXIT_ERROR


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="karvdashctl",
        description="Work with the karvdash dashboard from a terminal or a notebook.",
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--url", help="the dashboard's address, e.g. https://example.org/services/karvdash/")
    top.add_argument("--token", help="a hub API token (better: a config file, see --help of the docs)")
    top.add_argument("--config", metavar="FILE",
                     help="a config file ([Karvdash] base_url, token), instead of $KARVDASH_CONFIG and the usual places")
    top.add_argument("--json", action="store_true", help="print results as JSON")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_commands(commands, COMMANDS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Output(as_json=args.json)
    try:
        client = DashboardClient(find_connection(args.url, args.token, config=args.config))
        return args.run(client, args, out)
    except UsageProblem as problem:
        out.error(str(problem))
        return EXIT_USAGE
    except ConnectionProblem as problem:
        out.error(str(problem))
        return EXIT_CONNECTION
    except APIProblem as problem:
        out.error(f"{problem.message} ({problem.status})", problem.status)
        return exit_code(problem.status)
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except BrokenPipeError:
        return reader_gone()
    except OSError as problem:
        out.error(str(problem))
        return EXIT_ERROR


def reader_gone() -> int:
    """The output's reader went away (``karvdashctl ls | head``): stop
    quietly, as other commands do, with what is still buffered dropped."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def run() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = reader_gone()
    sys.exit(code)
