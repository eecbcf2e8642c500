"""Building a result: from files, arrays, modules or a set of models to a frozen result.

Sources and their alignment, the one class-order rule, the cached analyses, streamed
tables; the results it builds live in :mod:`graceful_core.results`.
"""
