"""Start the app: ``python -m graceful_ui.serve [streamlit options]``.

The same as ``streamlit run app.py``, except that the heavy imports (torch, the core,
Plotly, the UI helpers) happen once, before the server accepts connections. Streamlit
runs ``app.py`` in this process, so the first visitor's page does not wait about two
seconds for them (measured by ``benchmarks/bench_app.py``).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from graceful_core.explore.projection import warm_up_umap

APP = Path(__file__).resolve().parent.parent / "app.py"
#: Set to "1" to compile UMAP in a background thread at start. Off by default: the bundled sample's maps
#: are precomputed (no UMAP for them), and the compilation holds the GIL for long stretches, so it slowed
#: every page of the server -- the first visitor's cold Overview included -- for a minute or more; another
#: pair's first map compiles UMAP then, with its progress shown.
WARM_UMAP_ENV = "GRACEFUL_WARM_UMAP"


def warm_imports() -> None:
    """Import what every first page run needs (torch is the largest: about a second).

    A first comparison also imports scipy.stats (the slices' tests), scikit-learn's k-means (the
    embedding clusters) and cleanlab (the label issues): about two seconds more at load 5, paid here
    in the main thread before any visitor, not inside the first visitor's comparison.
    """
    import cleanlab.filter  # noqa: F401
    import cleanlab.rank  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import torch  # noqa: F401

    import graceful_core.comparing.sources  # noqa: F401
    import graceful_core.models.loader  # noqa: F401
    import graceful_core.results.comparison  # noqa: F401
    import graceful_ui.widgets  # noqa: F401


def _warm_umap_in_background() -> None:
    """Compile UMAP's numba code at low priority (Linux: per-thread nice 19), so the first Embeddings map
    does not pay for it; a visitor's own work keeps the CPU first."""
    import logging

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux: the thread runs at normal priority
        pass
    try:
        warm_up_umap()
    except Exception:  # a warm-up only: the first map compiles then, as without it
        logging.getLogger("graceful_ui").exception("UMAP warm-up failed")


def main(argv: list[str] | None = None) -> int:
    """Warm the imports (and, with ``GRACEFUL_WARM_UMAP=1``, UMAP's compiled code in the background), then hand over
    to Streamlit's command line."""
    warm_imports()
    if os.environ.get(WARM_UMAP_ENV, "0") == "1":
        threading.Thread(target=_warm_umap_in_background, name="umap-warm-up", daemon=True).start()
    from streamlit.web import cli as stcli

    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    return stcli.main()


if __name__ == "__main__":
    sys.exit(main())
