"""Start the app: ``python -m graceful_ui.serve [streamlit options]``.

The same as ``streamlit run app.py``, except that the heavy imports (torch, the core,
Plotly, the UI helpers) happen once, before the server accepts connections. Streamlit
runs ``app.py`` in this process, so the first visitor's page does not wait about two
seconds for them (measured by ``benchmarks/bench_app.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def warm_imports() -> None:
    """Import what every first page run needs (torch is the largest: about a second)."""
    import plotly.graph_objects  # noqa: F401
    import torch  # noqa: F401

    import graceful_core.comparison  # noqa: F401
    import graceful_core.models.loader  # noqa: F401
    import graceful_core.sources  # noqa: F401
    import graceful_ui.widgets  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Warm the imports, then hand over to Streamlit's own command line."""
    warm_imports()
    from streamlit.web import cli as stcli

    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    return stcli.main()


if __name__ == "__main__":
    sys.exit(main())
