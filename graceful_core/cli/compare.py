"""``graceful compare OLD NEW``: the comparison, its summary, its report files and its gates."""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from typing import Any

from graceful_core.cache import atomic_output
from graceful_core.cli.options import (
    STREAM,
    add_cache_option,
    add_pair_arguments,
    add_run_options,
    add_stream_option,
    rate,
)
from graceful_core.cli.outputs import check_outputs, json_bytes, write_outputs
from graceful_core.cli.progress import StderrProgress
from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.comparing.sources import compare_sources, should_stream
from graceful_core.metrics.slices import SliceReport, slices_exceeding
from graceful_core.report import label_review
from graceful_core.report.ci import Gate, github_annotations, junit_xml
from graceful_core.report.html import render_html_report, render_unlabelled_html_report
from graceful_core.report.sentences import slice_line
from graceful_core.report.text import text_summary, unlabelled_summary
from graceful_core.results.comparison import Comparison
from graceful_core.review.store import get_review
from graceful_core.review.verdicts import FlipVerdict
from graceful_core.vocabulary import ALPHA, EXIT_GATE, EXIT_OK, METRICS, percent

__all__ = ["MAX_GATE_SLICES", "add_parser", "compare_gates", "flip_ids_file_for", "run"]

#: The slice gate's message names at most this many failing slices.
MAX_GATE_SLICES = 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``compare`` subcommand's arguments."""
    c = sub.add_parser(
        "compare",
        help="compare an old and a new model (or their predictions tables)",
        description=(
            "Compare OLD and NEW on labelled samples: negative/positive flips, BTC/BEC, "
            "McNemar test, per-class table, and the embedding cross-test when both have embeddings. "
            "OLD and NEW are model files (torch.export .pt2, TorchScript .pt, ONNX .onnx; need --data) or "
            "predictions tables (.csv/.parquet)."
        ),
        epilog="Example: %(prog)s sample_data/models/old.pt "
        "sample_data/models/new.pt --data sample_data/digits/test --json report.json --max-nfr 0.02",
    )
    add_pair_arguments(c, "dataset: class-per-subfolder folder, .zip of one, or CSV/Parquet manifest")
    c.add_argument(
        "--reference",
        metavar="OLD2",
        help="a retrain of the old model (its architecture and data, another seed; model file or table, "
        "as OLD): the report adds the churn floor, the NFR of OLD2 against OLD, and whether NEW "
        "breaks significantly more images than that retrain (docs/metrics.md, section Churn floor)",
    )
    c.add_argument("--json", metavar="FILE", help="write the full report as JSON (keys: docs/metrics.md)")
    c.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    c.add_argument("--max-nfr", type=rate, metavar="X", help="gate: fail (exit 1) if the negative flip rate exceeds X")
    c.add_argument(
        "--min-btc", type=rate, metavar="X", help="gate: fail (exit 1) if backward trust compatibility is below X"
    )
    c.add_argument(
        "--max-slice-nfr",
        type=rate,
        metavar="X",
        help=f"gate: fail (exit 1) if a regression slice with adjusted p < {ALPHA:g} (a metadata value or a "
        "cluster of the old embeddings: docs/metrics.md) has a negative flip rate above X",
    )
    c.add_argument(
        "--max-churn",
        type=rate,
        metavar="X",
        help="gate: fail (exit 1) if the prediction churn (share of images whose predicted class changes; "
        "needs no labels) exceeds X",
    )
    c.add_argument(
        "--allow-missing",
        action="store_true",
        help="compare the ids both sides share when some rows have no match (otherwise an error, exit 2); "
        "the summary's first line and every gate then say they ran on a subset",
    )
    c.add_argument(
        "--format",
        choices=("text", "github"),
        default="text",
        dest="output_format",
        help="text (default), or github: also one ::error:: annotation per failed gate and per "
        "significant slice over its gate (GitHub Actions)",
    )
    c.add_argument("--junit", metavar="FILE", help="write a JUnit XML report: one test case per gate")
    c.add_argument(
        "--quiet", action="store_true", help="no progress and no summary: only failed gates, annotations and errors"
    )
    add_cache_option(c)
    add_stream_option(c, "with --json, every flipped sample goes to <json stem>.flips.parquet next to the report")
    add_run_options(c)


def flip_ids_file_for(json_path: str | os.PathLike) -> str:
    """The flip-id file of a report: ``<json stem>.flips.parquet`` next to the JSON file."""
    root, _ = os.path.splitext(os.fspath(json_path))
    return root + ".flips.parquet"


def run(args: argparse.Namespace) -> int:
    """Compare, write the report files (all or none), print the summary and the gates; the exit status."""
    streamed = should_stream([args.old, args.new], STREAM[args.stream])
    flip_file = flip_ids_file_for(args.json) if streamed and args.json else None
    check_outputs([p for p in (args.json, args.html, flip_file, args.junit) if p])
    with ExitStack() as stack:
        # A streamed comparison writes every flip id to a file next to the JSON: to a temporary name first,
        # renamed into place only after the report itself is written (no output at all on failure).
        staged = stack.enter_context(atomic_output(flip_file)) if flip_file else None
        comp = compare_sources(
            args.old,
            args.new,
            args.data,
            progress=None if args.quiet else StderrProgress(),
            use_cache=not args.no_cache,
            device=args.device,
            batch_size=args.batch_size,
            stream=streamed,
            flip_ids_path=staged,
            reference=args.reference,
            allow_missing=args.allow_missing,
        )
        # only when someone gave one (the report of a comparison nobody reviewed is Comparison.to_report)
        verdicts = label_review.load_verdicts(comp) if comp.key and isinstance(comp, Comparison) else None
        gates, outputs = _report_files(comp, args, verdicts, flip_file)
        write_outputs(outputs)
    if not args.quiet:
        print(_summary(comp, verdicts))
        if flip_file:
            print(f"every flipped sample: {flip_file}")
    for g in gates:
        if not (args.quiet and g.passed):
            print(g.line())
    if args.output_format == "github":
        missing = comp.missing.sentence() if comp.missing is not None and comp.missing.any else None
        for line in github_annotations(gates, warnings=[missing] if missing else []):
            print(line)
    return EXIT_GATE if any(not g.passed for g in gates) else EXIT_OK


def _report_files(
    comp: Comparison | UnlabelledComparison,
    args: argparse.Namespace,
    verdicts: dict[str, FlipVerdict] | None,
    flip_file: str | None,
) -> tuple[list[Gate], dict[str, bytes]]:
    """The gates and every asked-for report file's bytes, all rendered before anything is written."""
    report = comp.to_report()
    if verdicts and isinstance(comp, Comparison):
        report["flip_verdicts"] = label_review.verdicts_to_json(verdicts, label_review.counts_of(comp, verdicts))
    if flip_file:
        report["flip_ids_file"] = os.path.basename(flip_file)  # next to the JSON: named relative to it
    gates = compare_gates(comp, report, args)
    if gates:
        report["gates"] = [g.to_json() for g in gates]
    outputs: dict[str, bytes] = {}
    if args.json:
        outputs[args.json] = json_bytes(report)
    if args.html:
        if isinstance(comp, UnlabelledComparison):
            html = render_unlabelled_html_report(comp)
        else:
            html = render_html_report(comp, review=get_review(comp.key) if comp.key else None, verdicts=verdicts)
        outputs[args.html] = html.encode("utf-8")
    if args.junit:
        labels = str(isinstance(comp, Comparison)).lower()
        outputs[args.junit] = junit_xml(
            gates, properties={"old": comp.old_name, "new": comp.new_name, "labels": labels}
        ).encode()
    return gates, outputs


def _summary(comp: Comparison | UnlabelledComparison, verdicts: dict[str, FlipVerdict] | None) -> str:
    """The summary the command prints: the sections as lines (:mod:`graceful_core.report.text`)."""
    if isinstance(comp, UnlabelledComparison):
        return unlabelled_summary(comp)
    # the label issues and the flip verdicts come before the remedy
    extra = label_review.label_issue_lines(comp) + [label_review.verdict_line(comp, verdicts or {}) or ""]
    return text_summary(comp, extra_lines=extra)


def _number_gate(name: str, key: str, value: float | None, limit: float, upper: bool, labelled: bool) -> Gate:
    """A gate on one number of the report: at most (``upper``) or at least ``limit``."""
    m = METRICS[key]
    if value is None:
        why = "no true labels" if not labelled else "undefined on this data"
        return Gate(name, False, f"{m.name} cannot be checked: {why}")
    ok = value <= limit if upper else value >= limit
    sign = ("<=" if ok else ">") if upper else (">=" if ok else "<")
    return Gate(name, ok, f"{m.name} {m.format(value)} {sign} {percent(limit)}")


def compare_gates(
    comp: Comparison | UnlabelledComparison, report: dict[str, Any], args: argparse.Namespace
) -> list[Gate]:
    """The gates set on the command line, evaluated on ``comp`` (:class:`graceful_core.report.ci.Gate` each).

    A gate whose number does not exist (NFR or BTC without labels) fails and says why: a
    gate that cannot be checked must not pass. On a subset (``--allow-missing``) every gate
    says so.
    """
    labelled = report.get("labels", True)
    gates = []
    if args.max_nfr is not None:
        gates.append(
            _number_gate(
                "max-nfr", "negative_flip_rate", report.get("negative_flip_rate"), args.max_nfr, True, labelled
            )
        )
    if args.min_btc is not None:
        gates.append(
            _number_gate(
                "min-btc",
                "backward_trust_compatibility",
                report.get("backward_trust_compatibility"),
                args.min_btc,
                False,
                labelled,
            )
        )
    if args.max_slice_nfr is not None:
        if isinstance(comp, Comparison):
            name, ok, detail = _slice_gate(comp.regression_slices, args.max_slice_nfr)
            gates.append(Gate(name, ok, detail, _failing_slices(comp.regression_slices, args.max_slice_nfr)))
        else:
            gates.append(
                Gate(
                    "max-slice-nfr",
                    False,
                    "slice NFR cannot be checked: no true labels (churn slices are in the JSON report)",
                )
            )
    if args.max_churn is not None:
        gates.append(
            _number_gate(
                "max-churn", "prediction_churn", report.get("prediction_churn"), args.max_churn, True, labelled
            )
        )
    missing = comp.missing
    if missing is not None and missing.any:
        gates = [Gate(g.name, g.passed, f"{g.detail}; on a subset: {missing.sentence()}", g.items) for g in gates]
    return gates


def _failing_slices(report: SliceReport | None, max_nfr: float) -> tuple[str, ...]:
    """One line per significant slice over the slice gate (for one annotation each)."""
    if report is None:
        return ()
    return tuple(f"slice {slice_line(s)}" for s in slices_exceeding(report, max_nfr))


def _slice_gate(report: SliceReport | None, max_nfr: float) -> tuple[str, bool, str]:
    """``("max-slice-nfr", passed, detail)``: no slice with adjusted p < ALPHA may have NFR above ``max_nfr``.

    Without candidate slices (``report`` None) the gate passes and says there was nothing to test.
    """
    if report is None:
        return "max-slice-nfr", True, "no slices to test: no metadata columns and no old embeddings"
    failing = slices_exceeding(report, max_nfr)
    if not failing:
        return (
            "max-slice-nfr",
            True,
            (
                f"no slice with adjusted p < {ALPHA:g} has NFR above {percent(max_nfr)} "
                f"({len(report.slices)} slices tested)"
            ),
        )
    shown = "; ".join(slice_line(s) for s in failing[:MAX_GATE_SLICES])
    more = f"; and {len(failing) - MAX_GATE_SLICES} more" if len(failing) > MAX_GATE_SLICES else ""
    return (
        "max-slice-nfr",
        False,
        (
            f"{len(failing)} slice{'s' if len(failing) != 1 else ''} with adjusted p < "
            f"{ALPHA:g} and NFR above {percent(max_nfr)}: {shown}{more}"
        ),
    )
