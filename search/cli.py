"""The ``dynsweep`` command line.

Errors a user can cause (:class:`DynsweepError`) are printed as one line and exit with
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from analysis.errors import AnalysisError
from trainables.common.errors import DynsweepError
from trainables.registry import data_commands

from . import evaluate_cmd, rerun, train_cmd
from .version import package_version


class Parser(argparse.ArgumentParser):
    """argparse, with a refused option value as one line (not the usage block) and exit status 2;
    the subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dynsweep", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"dynsweep {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    data = sub.add_parser("data", help="generate and list datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    for name, cmd in data_commands().items():
        p = data_sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd.run)
    from . import launch_args

    validate = sub.add_parser("validate", help="check a sweep YAML without running it (writes nothing)")
    launch_args.add_validate_arguments(validate)
    launch_args.add_format_argument(validate)
    validate.set_defaults(handler=lambda args: importlib.import_module("search.validate_cmd").run_validate(args))
    launch = sub.add_parser("launch", help="run a sweep on a local Ray (or a cluster) tracked in MLflow")
    launch_args.add_launch_arguments(launch)
    from . import examples_cmd, resume, sweeps_cmd

    launch.set_defaults(handler=resume.launch_or_resume)

    examples = sub.add_parser("examples", help="the search spaces shipped with dynsweep (launch or validate them by name)")
    examples_cmd.add_arguments(examples)
    examples.set_defaults(handler=examples_cmd.run)

    ls = sub.add_parser("ls", help="the sweeps in a runs folder: state, trials, best metric, resumable")
    sweeps_cmd.add_ls_arguments(ls)
    ls.set_defaults(handler=sweeps_cmd.run_ls)
    status = sub.add_parser("status", help="one sweep: trials by state, errors, trial-seconds, driver alive")
    sweeps_cmd.add_status_arguments(status)
    status.set_defaults(handler=sweeps_cmd.run_status)
    res = sub.add_parser("resume", help="continue a sweep that died or was interrupted",
                         description="Continue a sweep from its folder: unfinished trials from their last "
                                     "checkpoint, errored ones as asked; the searcher's state is restored.")
    resume.add_arguments(res)
    res.set_defaults(handler=resume.run_resume)
    ext = sub.add_parser("extend", help="add trials to an Optuna sweep, continuing its searcher's history")
    resume.add_arguments(ext, extend=True)
    ext.set_defaults(handler=resume.run_extend)
    from analysis.commands import register

    register(sub)
    train = sub.add_parser("train", help="train one trial of a family locally (no Ray)",
                           description="Train one trial of a family locally, without Ray, and print its metrics.")
    train_cmd.add_arguments(train)
    train.set_defaults(handler=train_cmd.run)
    again = sub.add_parser("rerun", help="train a tracked trial again (exactly, or changed with --set), as a new run",
                           description="Train a trial recorded in MLflow again, locally, from its recorded config; "
                                       "check the code commit and the datasets first; track it as a new run.")
    rerun.add_arguments(again)
    again.set_defaults(handler=rerun.run)
    ev = sub.add_parser("evaluate", help="test a stored model again (other datasets, settings), tracked as an evaluation",
                        description="Evaluate the model of a tracked trial or a `dynsweep train` folder as at the end of its "
                        "training, on other datasets or with changed settings; tracked as an evaluation run nested "
                        "under the original trial.")
    evaluate_cmd.add_arguments(ev)
    ev.set_defaults(handler=evaluate_cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except (DynsweepError, AnalysisError) as err:
        print(f"dynsweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynsweep: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # the machine said no: a full disk, a folder we may not write, ...
        from .failures import disk_full

        if disk_full(err) is None and not isinstance(err, PermissionError):
            raise
        where = f" ({err.filename})" if isinstance(err.filename, str) else ""
        print(f"dynsweep: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2


def entry() -> None:
    """The console script: :func:`main`, then exit.

    After a command that loaded Ray (a sweep), everything it started has been shut down and
    written by the time :func:`main` returns; the interpreter's own teardown of the Ray, torch
    and MLflow modules would only add about a second, so the process ends at once.
    """
    code = main()
    if "ray" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
