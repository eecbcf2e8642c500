"""What a comparison gives you: frozen results that hold values and serialise to JSON.

A result never computes, draws or words anything: :mod:`graceful_core.comparing` builds
it, :mod:`graceful_core.report` says it, :mod:`graceful_core.explore` selects from it.
"""
