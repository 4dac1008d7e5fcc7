"""The ``python -m dibs`` command: mint a test token, or serve.

``python -m dibs token alice --name Alice --ttl 8h`` prints a token for
``alice`` signed with ``DIBS_SECRET``; ``python -m dibs serve`` is
``python wsgi.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from . import tokens
from .settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Read a duration such as ``90``, ``45s``, ``30m``, ``8h`` or ``2d``."""
    match = DURATION.fullmatch(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use e.g. 90, 45s, 30m, 8h or 2d"
        )
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m dibs`` and its commands."""
    parser = argparse.ArgumentParser(
        prog="python -m dibs",
        description="Dibs: live presence and claims for internal-tool pages.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    token = commands.add_parser(
        "token",
        help="print an identity token signed with DIBS_SECRET",
        description=(
            "Print an HS256 identity token for USER, signed with the secret in "
            "the DIBS_SECRET environment variable, for a client to send as "
            "auth: {token}. Meant for testing; in production the internal "
            "tool's backend mints tokens (see docs/security.md)."
        ),
    )
    token.add_argument("user", metavar="USER", help="the user id (the `sub` claim)")
    token.add_argument(
        "--name", help="the display name others see (default: the user id)"
    )
    token.add_argument(
        "--ttl",
        type=parse_duration,
        default=parse_duration("8h"),
        metavar="DURATION",
        help="how long the token is valid: 90, 45s, 30m, 8h, 2d (default: 8h)",
    )
    token.set_defaults(run=print_token)

    serve = commands.add_parser(
        "serve",
        help="serve Dibs, exactly as `python wsgi.py` does",
        description=(
            "Serve Dibs with gevent on DIBS_HOST:PORT, as `python wsgi.py` does; "
            "every setting comes from the environment (docs/configuration.md)."
        ),
    )
    serve.set_defaults(run=exec_server)
    return parser


def print_token(arguments: argparse.Namespace) -> int:
    """Print a token for the requested user; fail in one line without a secret."""
    try:
        secret = Settings.from_env().secret
    except SettingsError as error:
        return fail(str(error))
    if not secret:
        return fail("DIBS_SECRET is not set: export the secret the server signs with")

    try:
        token = tokens.mint(secret, arguments.user, arguments.name, arguments.ttl)
    except ValueError as error:
        return fail(str(error))
    print(token)
    return 0


def exec_server(arguments: argparse.Namespace) -> int:
    """Replace this process with ``python wsgi.py``."""
    # wsgi.py must patch gevent before anything else is imported, and this
    # process has already imported Flask and Socket.IO: start afresh instead.
    wsgi = str(ROOT / "wsgi.py")
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, wsgi])
    return 1  # not reached: execv does not return


def fail(message: str) -> int:
    """Print ``message`` as one line on stderr and return the failure status."""
    print(f"dibs: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command named in ``argv``."""
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
