"""``python -m graceful_core``: the command line (see :mod:`graceful_core.cli.commands`)."""

import sys

from graceful_core.cli.commands import main

sys.exit(main())
