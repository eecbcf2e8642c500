"""``pyarrow.compute`` as ``pc``, typed for the type checker as what it is to it: dynamic.

Most of pyarrow.compute's functions (``pc.equal``, ``pc.index_in``, ``pc.unique`` ...) are
made when the module is imported (``pyarrow/compute.py``: ``_make_global_functions``), so a
type checker cannot see them. Every module of graceful that calls them imports ``pc`` from here.
"""

from typing import Any

import pyarrow.compute

pc: Any = pyarrow.compute
