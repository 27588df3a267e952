"""``python -m durableagent.devhost --app-dir DIR --port N``."""

import sys

from ._cli import run

sys.exit(run(None, prog="python -m durableagent.devhost", with_subcommand=False))
