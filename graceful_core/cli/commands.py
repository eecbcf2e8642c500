"""Command line: ``graceful {compare,predict,train,mitigate,matrix,export,app} ...`` (or ``python -m graceful_core ...``).

Exit status (:mod:`graceful_core.vocabulary`: ``EXIT_OK``, ``EXIT_GATE``, ``EXIT_INPUT``): 0 report
written and gates passed; 1 a gate failed; 2 bad input, with one ``error: <file>: <problem>`` line
on stderr, no traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence

from graceful_core.cache import atomic_write_bytes
from graceful_core.cli.command_name import default_prog
from graceful_core.cli.progress import StderrProgress
from graceful_core.errors import InputError
from graceful_core.vocabulary import (
    ALPHA,
    EXIT_GATE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    METRICS,
    PARQUET_SUFFIXES,
    STREAM_CHOICES,
    STREAM_MIN_ROWS,
    STREAM_ROWS_ENV,
    TABLE_SUFFIXES,
    TRAINING_METHODS,
)


def _rate(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= x <= 1.0 or math.isnan(x):
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return x


def _add_run_options(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """``--device`` (and ``--batch-size``): where and in what batches models run."""
    from graceful_core.models.devices import DEVICES

    parser.add_argument(
        "--device",
        default="auto",
        metavar="|".join(DEVICES),
        help="where models run: auto (CUDA when available, else CPU; ONNX on onnxruntime's CUDA "
        "provider when present), cpu, or cuda (exit 2 where there is none). Default: auto",
    )
    if batch_size:
        parser.add_argument(
            "--batch-size", type=_positive_int, default=256, metavar="N", help="images per forward pass (default: 256)"
        )


def _add_stream_option(parser: argparse.ArgumentParser, more: str) -> None:
    """``--stream auto|always|never``: compare predictions tables streamed (memory independent of their rows)."""
    parser.add_argument(
        "--stream",
        choices=STREAM_CHOICES,
        default=STREAM_CHOICES[0],
        help=f"compare predictions tables streamed, in memory that does not grow with their rows "
        f"(no per-sample data, no embedding cross-test): auto when a table has more than "
        f"{STREAM_MIN_ROWS:,} rows (${STREAM_ROWS_ENV} to change), always, or never; {more}. "
        f"Default: auto",
    )


#: ``--stream`` choice -> the ``stream`` argument of the core.
_STREAM = dict(zip(STREAM_CHOICES, (None, True, False)))


def flip_ids_file_for(json_path: str | os.PathLike) -> str:
    """The flip-id file of a report: ``<json stem>.flips.parquet`` next to the JSON file."""
    root, _ = os.path.splitext(os.fspath(json_path))
    return root + ".flips.parquet"


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return n


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or default_prog(),
        description="graceful: see what a model update would break before you ship it.",
        epilog=f"Exit status: {EXIT_OK} ok, {EXIT_GATE} a gate failed, {EXIT_INPUT} bad input. "
        "Cache: $GRACEFUL_CACHE_DIR.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    c.add_argument("old", metavar="OLD", help="deployed model file or predictions table")
    c.add_argument("new", metavar="NEW", help="proposed model file or predictions table")
    c.add_argument(
        "--data", metavar="DATA", help="dataset: class-per-subfolder folder, .zip of one, or CSV/Parquet manifest"
    )
    c.add_argument(
        "--reference",
        metavar="OLD2",
        help="a retrain of the old model (its architecture and data, another seed; model file or table, "
        "as OLD): the report adds the churn floor, the NFR of OLD2 against OLD, and whether NEW "
        "breaks significantly more images than that retrain (docs/metrics.md, section Churn floor)",
    )
    c.add_argument("--json", metavar="FILE", help="write the full report as JSON (keys: docs/metrics.md)")
    c.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    c.add_argument("--max-nfr", type=_rate, metavar="X", help="gate: fail (exit 1) if the negative flip rate exceeds X")
    c.add_argument(
        "--min-btc", type=_rate, metavar="X", help="gate: fail (exit 1) if backward trust compatibility is below X"
    )
    c.add_argument(
        "--max-slice-nfr",
        type=_rate,
        metavar="X",
        help=f"gate: fail (exit 1) if a regression slice with adjusted p < {ALPHA:g} (a metadata value or a "
        "cluster of the old embeddings: docs/metrics.md) has a negative flip rate above X",
    )
    c.add_argument(
        "--max-churn",
        type=_rate,
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
    c.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")
    _add_stream_option(c, "with --json, every flipped sample goes to <json stem>.flips.parquet next to the report")
    _add_run_options(c)

    pr = sub.add_parser(
        "predict",
        help="run a model over a dataset and write a predictions table",
        description="Run MODEL over DATA and write a predictions table (docs/metrics.md) that `compare` accepts, "
        "so runs can be split over machines and compared later.",
    )
    pr.add_argument("model", metavar="MODEL", help="model file (torch.export .pt2, TorchScript .pt or ONNX)")
    pr.add_argument("--data", required=True, metavar="DATA", help="dataset")
    pr.add_argument(
        "--out",
        required=True,
        metavar="TABLE",
        help=f"output table ({', '.join(TABLE_SUFFIXES)}; with --engine ray: a new folder for Parquet shards)",
    )
    pr.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")
    pr.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: Ray Data actors on the cluster at $RAY_ADDRESS, "
        "else on a Ray started on this machine",
    )
    pr.add_argument("--workers", type=int, metavar="N", help="--engine ray: actors (default: CPUs - 1, or GPUs)")
    _add_run_options(pr)

    _add_train_parser(sub)
    _add_mitigate_parser(sub)
    _add_matrix_parser(sub)
    _add_export_parser(sub)
    _add_app_parser(sub)
    return p


def _add_train_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a new model that regresses less (focal distillation, LDI, ELODI) or stays compatible (BCT)",
        description="Reference trainer for the sample architectures (CPU, deterministic by seed).",
    )
    t.add_argument("--old", required=True, metavar="OLD", help="the deployed model (TorchScript)")
    t.add_argument("--data", required=True, metavar="DATA", help="training dataset")
    t.add_argument("--method", required=True, choices=TRAINING_METHODS)
    t.add_argument("--arch", default="large-cnn", help="architecture of the new model (default: large-cnn)")
    t.add_argument("--lambda", dest="lam", type=float, default=1.0, metavar="X", help="weight of the extra loss")
    t.add_argument("--alpha", type=float, default=1.0, metavar="A", help="focal distillation: base weight")
    t.add_argument(
        "--beta", type=float, default=5.0, metavar="B", help="focal distillation: extra weight where old is right"
    )
    t.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="focal distillation: KL at temperature T times T² (default 1; the PCT reference code uses 100)",
    )
    t.add_argument(
        "--margin",
        type=float,
        default=0.5,
        metavar="M",
        help="ldi / elodi: logit differences up to M are free (default 0.5, as ELODI's reference code)",
    )
    t.add_argument(
        "--p",
        dest="power",
        type=float,
        default=2.0,
        metavar="P",
        help="ldi / elodi: power of the excess difference (default 2)",
    )
    t.add_argument(
        "--reference-models",
        nargs="+",
        metavar="MODEL",
        help="elodi: k >= 3 reference models (TorchScript, other seeds); without it, --references plain "
        "models of --arch are trained first (seeds S+1..S+k, cached)",
    )
    t.add_argument(
        "--references",
        type=int,
        default=3,
        metavar="K",
        help="elodi: how many reference models to train when --reference-models is not given (default 3)",
    )
    t.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from this TorchScript model's weights (same --arch) instead of a random initialisation",
    )
    t.add_argument("--epochs", type=int, default=None, metavar="E", help="training epochs (default: the trainer's)")
    t.add_argument("--seed", type=int, default=0, metavar="S")
    t.add_argument("--out", required=True, metavar="NEW.pt", help="output TorchScript model file")
    t.add_argument(
        "--monitor",
        metavar="DATA",
        help="after every epoch, print the new model's error rate and NFR against OLD on DATA "
        "(a validation set: never choose settings on the test split)",
    )
    _add_run_options(t, batch_size=False)


def _points(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percentage points between 0 and 100, got {text!r}") from None
    if not 0.0 <= x < 100.0 or math.isnan(x):
        raise argparse.ArgumentTypeError(f"expected percentage points between 0 and 100, got {text!r}")
    return x


def _add_mitigate_parser(sub) -> None:
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
    m.add_argument("old", metavar="OLD", help="deployed model file or predictions table with class scores")
    m.add_argument("new", metavar="NEW", help="proposed model file or predictions table with class scores")
    m.add_argument("--data", metavar="DATA", help="the evaluation dataset (needed for model files)")
    m.add_argument(
        "--validation",
        metavar="DATA",
        help="a labelled dataset to choose the recommended point on (model files only); "
        "default: 2-fold cross-fitting on --data, split by a hash of the sample id",
    )
    m.add_argument(
        "--max-error-increase",
        type=_points,
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
    m.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")
    _add_run_options(m)


def _add_matrix_parser(sub) -> None:
    m = sub.add_parser(
        "matrix",
        help="pairwise NFR/BTC/accuracy/cross-test matrices over a set of models",
        description="Compare N >= 2 models (an ordered lineage, plus variants) on one dataset.",
    )
    m.add_argument("models", nargs="+", metavar="MODEL", help="model files or predictions tables, oldest first")
    m.add_argument("--data", metavar="DATA")
    m.add_argument("--json", metavar="FILE")
    _add_stream_option(m, "streamed, each pair of tables is one streamed pass")
    _add_run_options(m)


def _add_export_parser(sub) -> None:
    from graceful_core.training.export import EXPORT_FORMATS

    e = sub.add_parser(
        "export",
        help="convert a model file to ONNX or torch.export .pt2 (embeddings and graceful.json kept)",
        description="Convert MODEL (TorchScript .pt or torch.export .pt2) to ONNX or .pt2 with the same outputs "
        "(logits and, when the model has one, the embedding) and the same graceful.json. "
        "ONNX to .pt2 is not supported; in Python, "
        "graceful_core.training.export.save_pt2(module, info, path) exports an nn.Module.",
        epilog="Example: %(prog)s sample_data/models/new.pt --to pt2 --out new.pt2",
    )
    e.add_argument("model", metavar="MODEL", help="model file (TorchScript .pt or torch.export .pt2)")
    e.add_argument("--to", required=True, choices=EXPORT_FORMATS, help="target format")
    e.add_argument("--out", required=True, metavar="FILE", help="output file (.onnx or .pt2)")


def _add_app_parser(sub) -> None:
    a = sub.add_parser(
        "app",
        help="open the dashboard (on OLD and NEW when given)",
        description="Start the dashboard (python -m graceful_ui.serve). With OLD and NEW it opens on their "
        "comparison (model files need --data); without, on the bundled sample.",
        epilog="Example: %(prog)s old.pt2 new.pt2 --data test_images/ --port 8502",
    )
    a.add_argument("old", metavar="OLD", nargs="?", help="deployed model file or predictions table")
    a.add_argument("new", metavar="NEW", nargs="?", help="proposed model file or predictions table")
    a.add_argument("--data", metavar="DATA", help="dataset the models run on")
    a.add_argument("--port", type=_positive_int, metavar="PORT", help="server port (default: Streamlit's, 8501)")
    a.add_argument("--address", metavar="HOST", help="address to listen on (default: Streamlit's)")


def _check_outputs(paths) -> None:
    """Refuse output paths that cannot be written, before any work is done."""
    for path in paths:
        if os.path.isdir(path):
            raise InputError(path, "is a folder: give a file name for the output")
        _check_output_folders([path])
        parent = os.path.dirname(os.path.abspath(path))
        if not os.access(parent, os.W_OK):
            raise InputError(path, "its folder is not writable")


def _check_output_folders(paths) -> None:
    """Refuse output paths whose folder does not exist (nothing creates folders on the user's behalf)."""
    for path in paths:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise InputError(
                path, f"its folder {parent} does not exist: create it first, or give a path in an existing folder"
            )


def _write_outputs(outputs: dict[str, bytes]) -> None:
    """Write every output file or none: destinations are checked first, then all are written."""
    _check_outputs(outputs)
    for path, data in outputs.items():
        atomic_write_bytes(path, data)


def _write_json(path: str, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def _cmd_compare(args) -> int:
    from contextlib import ExitStack

    from graceful_core.cache import atomic_output
    from graceful_core.comparing.labelfree import UnlabelledComparison
    from graceful_core.comparing.sources import compare_sources, should_stream
    from graceful_core.report.ci import github_annotations, junit_xml
    from graceful_core.report.text import text_summary, unlabelled_summary

    streamed = should_stream([args.old, args.new], _STREAM[args.stream])
    flip_file = flip_ids_file_for(args.json) if streamed and args.json else None
    _check_outputs([p for p in (args.json, args.html, flip_file, args.junit) if p])
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
        unlabelled = isinstance(comp, UnlabelledComparison)
        if unlabelled and args.html:
            raise InputError(
                args.html,
                "the HTML report needs true labels; without them use --json (prediction "
                "churn, transition matrix, churn slices)",
            )
        report = comp.to_report()
        from graceful_core.report import label_review

        verdicts = label_review.load_verdicts(comp) if comp.key and not unlabelled else None
        if verdicts:  # only when someone gave one (the report of a comparison nobody reviewed is Comparison.to_report)
            report["flip_verdicts"] = label_review.verdicts_to_json(verdicts, label_review.counts_of(comp, verdicts))
        if flip_file:
            report["flip_ids_file"] = os.path.basename(flip_file)  # next to the JSON: named relative to it
        gates = compare_gates(comp, report, args)
        if gates:
            report["gates"] = [g.to_json() for g in gates]
        html_text = None
        if args.html:  # render everything before writing anything: no partial outputs
            from graceful_core.report.html import render_html_report
            from graceful_core.review.store import get_review

            html_text = render_html_report(comp, review=get_review(comp.key) if comp.key else None, verdicts=verdicts)
        outputs = {}
        if args.json:
            outputs[args.json] = (json.dumps(report, indent=2, allow_nan=False) + "\n").encode()
        if html_text is not None:
            outputs[args.html] = html_text.encode("utf-8")
        if args.junit:
            outputs[args.junit] = junit_xml(
                gates, properties={"old": comp.old_name, "new": comp.new_name, "labels": str(not unlabelled).lower()}
            ).encode()
        _write_outputs(outputs)
    missing = comp.missing.sentence() if comp.missing is not None and comp.missing.any else None
    if not args.quiet:
        if unlabelled:
            print(unlabelled_summary(comp))
        else:  # the label issues and the flip verdicts come before the remedy
            print(
                text_summary(
                    comp,
                    extra_lines=label_review.label_issue_lines(comp)
                    + [label_review.verdict_line(comp, verdicts or {}) or ""],
                )
            )
        if flip_file:
            print(f"every flipped sample: {flip_file}")
    for g in gates:
        if not (args.quiet and g.passed):
            print(g.line())
    if args.output_format == "github":
        for line in github_annotations(gates, warnings=[missing] if missing else []):
            print(line)
    return EXIT_GATE if any(not g.passed for g in gates) else EXIT_OK


def compare_gates(comp, report: dict, args) -> list:
    """The gates set on the command line, evaluated on ``comp`` (:class:`graceful_core.report.ci.Gate` each).

    A gate whose number does not exist (NFR or BTC without labels) fails and says why: a
    gate that cannot be checked must not pass. On a subset (``--allow-missing``) every gate
    says so.
    """
    from graceful_core.report.ci import Gate
    from graceful_core.vocabulary import percent

    labelled = report.get("labels", True)
    gates = []

    def number_gate(name: str, key: str, value, limit: float, upper: bool) -> Gate:
        m = METRICS[key]
        if value is None:
            why = "no true labels" if not labelled else "undefined on this data"
            return Gate(name, False, f"{m.name} cannot be checked: {why}")
        ok = value <= limit if upper else value >= limit
        sign = ("<=" if ok else ">") if upper else (">=" if ok else "<")
        return Gate(name, ok, f"{m.name} {m.format(value)} {sign} {percent(limit)}")

    if args.max_nfr is not None:
        gates.append(number_gate("max-nfr", "negative_flip_rate", report.get("negative_flip_rate"), args.max_nfr, True))
    if args.min_btc is not None:
        gates.append(
            number_gate(
                "min-btc",
                "backward_trust_compatibility",
                report.get("backward_trust_compatibility"),
                args.min_btc,
                False,
            )
        )
    if args.max_slice_nfr is not None:
        if labelled:
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
        gates.append(number_gate("max-churn", "prediction_churn", report.get("prediction_churn"), args.max_churn, True))
    missing = getattr(comp, "missing", None)
    if missing is not None and missing.any:
        gates = [Gate(g.name, g.passed, f"{g.detail}; on a subset: {missing.sentence()}", g.items) for g in gates]
    return gates


def _failing_slices(report, max_nfr: float) -> tuple[str, ...]:
    """One line per significant slice over the slice gate (for one annotation each)."""
    from graceful_core.metrics.slices import slices_exceeding
    from graceful_core.report.sentences import slice_line

    if report is None:
        return ()
    return tuple(f"slice {slice_line(s)}" for s in slices_exceeding(report, max_nfr))


#: The slice gate's message names at most this many failing slices.
MAX_GATE_SLICES = 5


def _slice_gate(report, max_nfr: float) -> tuple[str, bool, str]:
    """``("max-slice-nfr", passed, detail)``: no slice with adjusted p < ALPHA may have NFR above ``max_nfr``.

    Without candidate slices (``report`` None) the gate passes and says there was nothing to test.
    """
    from graceful_core.metrics.slices import slices_exceeding
    from graceful_core.report.sentences import slice_line
    from graceful_core.vocabulary import percent

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


def _cmd_predict(args) -> int:
    if args.engine == "ray":
        return _cmd_predict_ray(args)
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import write_predictions_table
    from graceful_core.models.loader import load_model

    suffix = os.path.splitext(args.out)[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(args.out, f"output must end in {' or '.join((PARQUET_SUFFIXES[0], '.csv'))}")
    model = load_model(args.model, device=args.device)
    dataset = load_dataset(args.data)
    name = os.path.basename(args.model)
    preds = predict(
        model, dataset, progress=lambda d, t: _bar(name, d, t), use_cache=not args.no_cache, batch_size=args.batch_size
    )
    write_predictions_table(preds, args.out)
    print(f"wrote {len(preds)} predictions of {name} to {args.out}")
    return EXIT_OK


def _cmd_predict_ray(args) -> int:
    from graceful_core.distributed import predict_ray

    if args.workers is not None and args.workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {args.workers}")
    # The devices are the Ray workers' (checked there), not this machine's: a head node without a GPU can
    # still send the work to GPU workers. "auto" asks for no GPU.
    device = "cuda" if args.device == "cuda" else "cpu"
    r = predict_ray(args.model, args.data, args.out, device=device, actors=args.workers, batch_size=args.batch_size)
    where = f"Ray at {r.address}" if r.address else "a local Ray"
    print(
        f"wrote {r.n_rows} predictions of {os.path.basename(args.model)} to {r.out_dir} "
        f"({len(r.files)} Parquet shards, {r.actors} actors on {where})"
    )
    return EXIT_OK


_BAR = StderrProgress()


def _bar(stage: str, done: int, total: int) -> None:
    _BAR(stage, done, total)


def _cmd_train(args) -> int:
    from graceful_core.cli.train import run_train

    return run_train(args, progress=_bar)


def _cmd_mitigate(args) -> int:
    from graceful_core.remedies.build import mitigate_sources
    from graceful_core.report.remedies import whatif_text

    _check_outputs([p for p in (args.json, args.export) if p])
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
        _write_json(args.json, result.to_json())
    print(whatif_text(result.report))
    if written:
        print(written)
    return EXIT_OK


def _cmd_matrix(args) -> int:
    from graceful_core.comparing.lineage import STAGE_PAIRS, model_matrix_report

    def progress(stage: str, done: int, total: int) -> None:
        if stage != STAGE_PAIRS:  # the stderr bar counts images; the cross-tests take seconds
            _bar(stage, done, total)

    model_set = model_matrix_report(
        args.models,
        args.data,
        progress=progress,
        device=args.device,
        batch_size=args.batch_size,
        stream=_STREAM[args.stream],
    )
    if args.json:
        _write_json(args.json, model_set.to_report())
    from graceful_core.report.lineage_text import matrix_text

    print(matrix_text(model_set))
    return EXIT_OK


def _cmd_export(args) -> int:
    from graceful_core.training.export import convert_model_file

    want = {"onnx": ".onnx", "pt2": ".pt2"}[args.to]
    if not args.out.lower().endswith(want):
        raise InputError(args.out, f"the output of --to {args.to} must end in {want}")
    print(convert_model_file(args.model, args.to, args.out))
    return EXIT_OK


#: Environment variables that hand ``graceful app OLD NEW --data DATA`` to the dashboard
#: (read by :func:`graceful_ui.inputs.cli_spec`).
APP_ENV = {"old": "GRACEFUL_APP_OLD", "new": "GRACEFUL_APP_NEW", "data": "GRACEFUL_APP_DATA"}


def app_environment(old: str | None, new: str | None, data: str | None) -> dict[str, str]:
    """The environment variables that open the dashboard on ``old`` vs ``new`` (absolute paths).

    Returns ``{}`` without inputs (the dashboard opens on the bundled sample).

    Raises
    ------
    InputError
        Only one of OLD/NEW, a file or folder that does not exist, or a model file without
        ``--data``.
    """
    from graceful_core.comparing.sources import is_table

    if (old is None) != (new is None):
        raise InputError(None, "give both OLD and NEW, or neither (the dashboard then opens on the bundled sample)")
    if old is None:
        if data is not None:
            raise InputError(data, "--data needs OLD and NEW")
        return {}
    from graceful_core.io.tables import is_glob, table_files

    for path in (old, new):
        if is_glob(path):  # shards named by a pattern (quoted on the shell)
            table_files(path)  # InputError when nothing matches
    for path in (old, new, data):
        if path is not None and not os.path.exists(path) and not (path != data and is_glob(path)):
            raise InputError(path, "no such file")
    if data is None and not (is_table(old) and is_table(new)):
        model = old if not is_table(old) else new
        raise InputError(model, "a model file needs a dataset to run on: give --data DATA")
    env = {APP_ENV["old"]: os.path.abspath(old), APP_ENV["new"]: os.path.abspath(new)}
    if data is not None:
        env[APP_ENV["data"]] = os.path.abspath(data)
    return env


def app_command(args) -> list[str]:
    """The server command line ``graceful app`` runs (``python -m graceful_ui.serve`` with its options)."""
    cmd = [
        sys.executable,
        "-m",
        "graceful_ui.serve",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.port:
        cmd += ["--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]
    return cmd


def _cmd_app(args) -> int:
    import subprocess

    env = dict(os.environ)
    for key in APP_ENV.values():
        env.pop(key, None)
    env.update(app_environment(args.old, args.new, args.data))
    shown = f" on {os.path.basename(args.old)} → {os.path.basename(args.new)}" if args.old else ""
    print(f"starting the dashboard{shown} (Ctrl+C stops it)", file=sys.stderr)
    return subprocess.call(app_command(args), env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {
        "compare": _cmd_compare,
        "predict": _cmd_predict,
        "train": _cmd_train,
        "matrix": _cmd_matrix,
        "export": _cmd_export,
        "app": _cmd_app,
        "mitigate": _cmd_mitigate,
    }[args.command]
    try:
        # Every output's folder must exist before any work is done (none is created).
        _check_output_folders([p for p in (getattr(args, a, None) for a in ("out", "json", "html", "junit")) if p])
        if getattr(args, "device", None) is not None and getattr(args, "engine", "local") != "ray":
            from graceful_core.models.devices import require_device

            args.device = require_device(args.device)
        return handler(args)
    except InputError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_INPUT
    except (OSError, MemoryError) as e:
        where = getattr(e, "filename", None)
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        print(f"error: {where + ': ' if where else ''}{msg}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # an unforeseen failure: still one line, unless debugging
        if os.environ.get("GRACEFUL_DEBUG"):
            raise
        print(
            f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]} "
            "(set GRACEFUL_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INPUT
