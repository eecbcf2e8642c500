"""``python -m graceful_core``: the command line (see :mod:`graceful_core.cli`)."""

import sys

from graceful_core.cli import main

sys.exit(main())
