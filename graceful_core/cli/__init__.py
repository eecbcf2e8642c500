"""The ``graceful`` command: every subcommand, training's included (:mod:`.commands` holds ``main``)."""
