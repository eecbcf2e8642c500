"""``graceful mitigate OLD NEW``: what each remedy without training would change, the one to deploy, its file."""

from __future__ import annotations

import argparse

from graceful_core.cli.options import add_cache_option, add_pair_arguments, add_run_options, percentage_points
from graceful_core.cli.outputs import check_outputs, write_json
from graceful_core.cli.progress import StderrProgress
from graceful_core.remedies.build import mitigate_sources
from graceful_core.report.remedies import whatif_text
from graceful_core.vocabulary import EXIT_OK

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``mitigate`` subcommand's arguments."""
    m = sub.add_parser(
        "mitigate",
        help="what mixing, gating and weight interpolation of OLD and NEW would change, and which to deploy",
        description="Score the remedies that need no training (mixing the two models' class probabilities, "
        "gating on their confidences, interpolating the weights of two models of one architecture) "
        "on DATA, recommend one (chosen on --validation, else by 2-fold cross-fitting on DATA: the "
        "reported numbers are never the ones it was chosen on), and optionally write it as one "
        "model file. JSON keys: docs/metrics.md, section What-if remedies.",
        epilog="Example: %(prog)s sample_data/fashion/models/old.pt sample_data/fashion/models/new.pt "
        "--data sample_data/fashion/test --json whatif.json --export transition.pt2",
    )
    add_pair_arguments(m, "the evaluation dataset (needed for model files)", suffix=" with class scores")
    m.add_argument(
        "--validation",
        metavar="DATA",
        help="a labelled dataset to choose the recommended point on (model files only); "
        "default: 2-fold cross-fitting on --data, split by a hash of the sample id",
    )
    m.add_argument(
        "--max-error-increase",
        type=percentage_points,
        default=0.1,
        metavar="X",
        help="the recommendation: lowest NFR whose error is at most the new model's + X percentage "
        "points on the choosing data (default: 0.1)",
    )
    m.add_argument("--json", metavar="OUT", help="write every point and the recommendation as JSON")
    m.add_argument(
        "--export",
        metavar="FILE",
        help="write the recommended remedy as one model file (.pt2 or .onnx; needs model files): "
        "graceful predict on it gives the recommended point's predictions",
    )
    add_cache_option(m)
    add_run_options(m)


def run(args: argparse.Namespace) -> int:
    """Score the remedies, write the JSON and the exported file when asked, print the summary; exit status 0."""
    check_outputs([p for p in (args.json, args.export) if p])
    result = mitigate_sources(
        args.old,
        args.new,
        args.data,
        validation=args.validation,
        max_error_increase=args.max_error_increase / 100.0,
        progress=StderrProgress(),
        use_cache=not args.no_cache,
        device=args.device,
        batch_size=args.batch_size,
    )
    written = result.export(args.export) if args.export else None  # before the JSON: no JSON for a failed export
    if args.json:
        write_json(args.json, result.to_json())
    print(whatif_text(result.report))
    if written:
        print(written)
    return EXIT_OK
