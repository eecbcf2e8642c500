"""Draw docs/architecture.svg: the layers of the import contract and every import between them.

The layers are read from the import contracts in ``pyproject.toml`` (the ones ``lint-imports``
checks), the imports from the code itself (grimp, the import-linter's graph; imports under
``if TYPE_CHECKING:`` left out, as in the contract). One box per layer member, one row per layer,
highest layer on top. A grey arrow per import between boxes that no longer chain of arrows
already implies (the transitive reduction: the full graph is a hairball), a red dashed one for each
import the contract lists as an exception, and in blue the path of one comparison from the files to
the screen (:data:`PATH`, numbered in the order docs/architecture.md tells it). The script fails if
any import goes up.

Run from the repository root::

    .venv/bin/python scripts/draw_architecture.py          # writes docs/architecture.svg
"""

from __future__ import annotations

import argparse
import html
import sys
import tomllib
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
# grimp finds the packages on sys.path; app_pages and graceful_ui are not installed, so the root goes first.
sys.path.insert(0, str(ROOT))
ROW_H, BOX_H, WIDTH, MARGIN = 74, 34, 1180, 20
#: What each row of the drawing is, in the words of docs/architecture.md.
ROW_NAMES = {
    "app_pages": "pages",
    "graceful_ui": "UI helpers",
    "graceful_core.cli": "commands",
    "graceful_core.remedies": "remedies",
    "graceful_core.training": "training",
    "graceful_core.report": "report",
    "graceful_core.api": "Python API, page data",
    "graceful_core.comparing": "building a result",
    "graceful_core.results": "results",
    "graceful_core.inference": "running models",
    "graceful_core.io": "files in",
    "graceful_core.review": "reviews, data types",
    "graceful_core.metrics": "metrics",
    "graceful_core.vocabulary": "words, errors, cache",
}


#: One comparison from the files to a pixel, as docs/architecture.md tells it (numbered in this order).
PATH = [
    ("app_pages", "graceful_ui"),  # 1 a page asks the UI's cache for the comparison
    ("graceful_ui", "graceful_core.comparing"),  # 2 which builds it from the chosen files
    ("graceful_core.comparing", "graceful_core.io"),  # 3 the dataset (or the predictions tables) is read
    ("graceful_core.comparing", "graceful_core.models"),  # 4 each model is loaded from its file
    ("graceful_core.comparing", "graceful_core.inference"),  # 5 and runs over the images
    ("graceful_core.comparing", "graceful_core.results"),  # 6 the two predictions become the frozen result
    ("graceful_core.comparing", "graceful_core.metrics"),  # 7 whose numbers are the metrics
    ("app_pages", "graceful_core.report"),  # 8 and the page says it with the report's words and figures
]


def contract_rows(pyproject: Path) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The drawing's rows (pages, UI, then the core's layers, top first) and the contract's listed exceptions."""
    cfg = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    core = next(c for c in cfg["contracts"] if c["type"] == "layers" and "graceful_core.cli" in c["layers"])
    rows = [["app_pages"], ["graceful_ui"]]
    rows += [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in core["layers"]]
    ignored = [tuple(s.strip() for s in line.split("->")) for line in core.get("ignore_imports", [])]
    return rows, ignored


def box_of(module: str, boxes: set[str]) -> str | None:
    """The box a module is drawn in: the longest box name that is the module or a package above it."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in boxes:
            return name
    return None


def draw(rows: list[list[str]], ignored: list[tuple[str, str]]) -> str:
    boxes = {m for row in rows for m in row}
    graph = grimp.build_graph("graceful_core", "graceful_ui", "app_pages", exclude_type_checking_imports=True)
    edges: set[tuple[str, str]] = set()
    for module in graph.modules:
        a = box_of(module, boxes)
        for imported in graph.find_modules_directly_imported_by(module):
            b = box_of(imported, boxes)
            if a and b and a != b:
                edges.add((a, b))
    pos: dict[str, tuple[float, float, float]] = {}  # box -> (x centre, y top, width)
    label_w = 150
    for r, row in enumerate(rows):
        usable = WIDTH - label_w - 2 * MARGIN
        w = min(260.0, (usable - 12 * (len(row) - 1)) / len(row))
        x0 = label_w + MARGIN + (usable - (w * len(row) + 12 * (len(row) - 1))) / 2
        for i, m in enumerate(row):
            pos[m] = (x0 + i * (w + 12) + w / 2, MARGIN + r * ROW_H, w)
    height = MARGIN * 2 + len(rows) * ROW_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker>'
        '<marker id="r" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#d62728"/></marker>'
        '<marker id="p" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f5fb4"/></marker></defs>',
    ]
    for r, row in enumerate(rows):
        y = MARGIN + r * ROW_H
        if r % 2 == 0:
            out.append(f'<rect x="4" y="{y - 8}" width="{WIDTH - 8}" height="{ROW_H}" fill="#f4f6fa"/>')
        name = ROW_NAMES.get(row[0], "")
        out.append(f'<text x="{MARGIN}" y="{y + BOX_H / 2 + 4}" fill="#555">{html.escape(name)}</text>')
    upward = []
    for a, b in edges:
        if pos[a][1] >= pos[b][1] and (a, b) not in ignored:
            upward.append((a, b))  # would break the contract: the script fails
    downward = nx.DiGraph([e for e in edges if e not in ignored and e not in upward])
    kept = set(nx.transitive_reduction(downward).edges) if not upward else set(edges)
    styles = {
        "plain": ("#999", "a", "", 1.0),
        "exception": ("#d62728", "r", ' stroke-dasharray="5,4"', 1.5),
        "path": ("#1f5fb4", "p", "", 2.5),
    }
    drawn = [(a, b, "plain") for a, b in sorted(kept)] + [(a, b, "exception") for a, b in ignored if (a, b) in edges]
    drawn += [(a, b, "path") for a, b in PATH if (a, b) in edges]
    for a, b, kind in drawn:
        (xa, ya, _), (xb, yb, _) = pos[a], pos[b]
        colour, marker, dash, width = styles[kind]
        y1, y2 = (ya + BOX_H, yb) if yb > ya else (ya, yb + BOX_H)
        if kind == "exception":  # an upward arrow: bend it out to the right of the boxes
            xa, xb = xa + pos[a][2] / 2, xb + pos[b][2] / 2
            y1, y2 = ya + BOX_H / 2, yb + BOX_H / 2
            out.append(
                f'<path d="M{xa:.0f},{y1:.0f} C{xa + 120:.0f},{y1:.0f} {xb + 120:.0f},{y2:.0f} '
                f'{xb:.0f},{y2:.0f}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
                f'marker-end="url(#{marker})"/>'
            )
            continue
        out.append(
            f'<path d="M{xa:.0f},{y1:.0f} C{xa:.0f},{(y1 + y2) / 2:.0f} {xb:.0f},{(y1 + y2) / 2:.0f} '
            f'{xb:.0f},{y2:.0f}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-opacity="{0.9 if kind == "path" else 0.6}" marker-end="url(#{marker})"/>'
        )
        if kind == "path":
            n = PATH.index((a, b)) + 1
            xm, ym = (xa + xb) / 2, (y1 + y2) / 2
            out.append(
                f'<circle cx="{xm:.0f}" cy="{ym:.0f}" r="9" fill="#1f5fb4"/>'
                f'<text x="{xm:.0f}" y="{ym + 4:.0f}" text-anchor="middle" fill="white" '
                f'font-size="11">{n}</text>'
            )
    for m, (x, y, w) in pos.items():
        label = m.removeprefix("graceful_core.")
        out.append(
            f'<rect x="{x - w / 2:.0f}" y="{y}" width="{w:.0f}" height="{BOX_H}" rx="6" fill="#ffffff" '
            f'stroke="#1f77b4" stroke-width="1.5"/>'
        )
        out.append(f'<text x="{x:.0f}" y="{y + BOX_H / 2 + 4}" text-anchor="middle">{html.escape(label)}</text>')
    out.append("</svg>")
    if upward:
        sys.exit(f"imports against the layers (fix them, or lint-imports fails too): {upward}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "architecture.svg"))
    args = parser.parse_args(argv)
    rows, ignored = contract_rows(ROOT / "pyproject.toml")
    Path(args.out).write_text(draw(rows, ignored))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
