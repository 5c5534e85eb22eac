"""The `repro` command: list, train, evaluate and reproduce the paper's Table 2.

The parser is assembled here from the command groups (repro/cli/runs.py, device.py, reports.py,
submit.py, history.py; shared flags in options.py); bad input of any command ends in one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from repro.cli import device, history, reports, runs, submit
from repro.cli.options import common_options
from repro.paper.configs import UnknownConfigurationError
from repro.paper.expected import ExpectedResultsError
from repro.runs.checkpoint import CheckpointError
from repro.runs.data import DataError
from repro.runs.provenance import git_commit
from repro.runs.training import RunExistsError, TrainingDivergedError
from repro.verdicts.outcome import EXIT_CODES_TEXT, EXIT_USAGE

COMMAND_GROUPS = (runs, device, reports, submit, history)  # in the order `repro --help` lists them


def build_parser() -> argparse.ArgumentParser:
    """The `repro` parser: every command group's subcommands, sharing the common flags."""
    parser = argparse.ArgumentParser(prog="repro", description=__doc__.split("\n")[0], epilog=EXIT_CODES_TEXT,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_options()
    for group in COMMAND_GROUPS:
        group.add_commands(sub, common)
    return parser


USER_ERRORS = (ExpectedResultsError, UnknownConfigurationError, DataError, CheckpointError, RunExistsError, TrainingDivergedError, ValueError)
# ValueError is how bad input is reported throughout (budgets, attacks, data); REPRO_DEBUG=1 shows
# the traceback instead, for the rare ValueError that is a bug rather than bad input.
DEBUG_ENV = "REPRO_DEBUG"


def _terminate(signum, frame):
    raise KeyboardInterrupt  # a kill ends like Ctrl-C: the last epoch's checkpoint is already on disk


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    git_commit()  # the code this process loaded, before a long run gives anyone time to commit
    try:
        return args.func(args)
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"repro: error: {error} (traceback: {DEBUG_ENV}=1)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nrepro: interrupted; training is checkpointed every epoch and every few minutes, "
              "continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
