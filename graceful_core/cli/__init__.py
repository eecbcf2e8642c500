"""The ``graceful`` command: one module per subcommand (``add_parser`` and ``run``); :mod:`.commands` holds ``main``."""
