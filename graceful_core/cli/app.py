"""``graceful app [OLD NEW --data DATA]``: start the dashboard, on a given pair or on the bundled sample."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from graceful_core.cli.options import add_pair_arguments, positive_int
from graceful_core.comparing.sources import is_table
from graceful_core.errors import InputError
from graceful_core.io.tables import is_glob, table_files

__all__ = ["APP_ENV", "add_parser", "app_command", "app_environment", "run"]

#: Environment variables that hand ``graceful app OLD NEW --data DATA`` to the dashboard
#: (read by :func:`graceful_ui.bundled_specs.cli_spec`).
APP_ENV = {"old": "GRACEFUL_APP_OLD", "new": "GRACEFUL_APP_NEW", "data": "GRACEFUL_APP_DATA"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``app`` subcommand's arguments."""
    a = sub.add_parser(
        "app",
        help="open the dashboard (on OLD and NEW when given)",
        description="Start the dashboard (python -m graceful_ui.serve). With OLD and NEW it opens on their "
        "comparison (model files need --data); without, on the bundled sample.",
        epilog="Example: %(prog)s old.pt2 new.pt2 --data test_images/ --port 8502",
    )
    add_pair_arguments(a, "dataset the models run on", optional=True)
    a.add_argument("--port", type=positive_int, metavar="PORT", help="server port (default: Streamlit's, 8501)")
    a.add_argument("--address", metavar="HOST", help="address to listen on (default: Streamlit's)")


def app_environment(old: str | None, new: str | None, data: str | None) -> dict[str, str]:
    """The environment variables that open the dashboard on ``old`` vs ``new`` (absolute paths).

    Returns ``{}`` without inputs (the dashboard opens on the bundled sample).

    Raises
    ------
    InputError
        Only one of OLD/NEW, a file or folder that does not exist, or a model file without
        ``--data``.
    """
    if old is None or new is None:
        if old is not None or new is not None:
            raise InputError(None, "give both OLD and NEW, or neither (the dashboard then opens on the bundled sample)")
        if data is not None:
            raise InputError(data, "--data needs OLD and NEW")
        return {}
    for path in (old, new):
        if is_glob(path):  # shards named by a pattern (quoted on the shell)
            table_files(path)  # InputError when nothing matches
    for path in (old, new):
        if not os.path.exists(path) and not is_glob(path):
            raise InputError(path, "no such file")
    if data is not None and not os.path.exists(data):
        raise InputError(data, "no such file")
    if data is None and not (is_table(old) and is_table(new)):
        model = old if not is_table(old) else new
        raise InputError(model, "a model file needs a dataset to run on: give --data DATA")
    env = {APP_ENV["old"]: os.path.abspath(old), APP_ENV["new"]: os.path.abspath(new)}
    if data is not None:
        env[APP_ENV["data"]] = os.path.abspath(data)
    return env


def app_command(args: argparse.Namespace) -> list[str]:
    """The server command line ``graceful app`` runs (``python -m graceful_ui.serve`` with its options)."""
    cmd = [
        sys.executable,
        "-m",
        "graceful_ui.serve",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.port:
        cmd += ["--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]
    return cmd


def run(args: argparse.Namespace) -> int:
    """Start the dashboard and wait for it; its exit status."""
    env = dict(os.environ)
    for key in APP_ENV.values():
        env.pop(key, None)
    env.update(app_environment(args.old, args.new, args.data))
    shown = f" on {os.path.basename(args.old)} → {os.path.basename(args.new)}" if args.old else ""
    print(f"starting the dashboard{shown} (Ctrl+C stops it)", file=sys.stderr)
    return subprocess.call(app_command(args), env=env)
