"""Command line: ``python -m graceful_core {compare,predict,train,matrix} ...``.

Exit status (DESIGN §3): 0 report written and gates passed; 1 a gate failed; 2 bad
input, with one ``error: <file>: <problem>`` line on stderr, no traceback and no
partial output file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence

from graceful_core.cache import atomic_write_bytes
from graceful_core.errors import InputError
from graceful_core.progress import StderrProgress

EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2


def _rate(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= x <= 1.0 or math.isnan(x):
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m graceful_core",
        description="graceful: see what a model update would break before you ship it.",
        epilog="Exit status: 0 ok, 1 a gate failed, 2 bad input. Cache: $GRACEFUL_CACHE_DIR.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "compare",
        help="compare an old and a new model (or their predictions tables)",
        description=(
            "Compare OLD and NEW on labelled samples: negative/positive flips, BTC/BEC, "
            "McNemar test, per-class table, and the embedding cross-test when both have embeddings. "
            "OLD and NEW are model files (TorchScript .pt, ONNX .onnx; need --data) or predictions "
            "tables (.csv/.parquet)."
        ),
        epilog="Example: python -m graceful_core compare sample_data/models/old.pt "
        "sample_data/models/new.pt --data sample_data/digits/test --json report.json --max-nfr 0.02",
    )
    c.add_argument("old", metavar="OLD", help="deployed model file or predictions table")
    c.add_argument("new", metavar="NEW", help="proposed model file or predictions table")
    c.add_argument("--data", metavar="DATA", help="dataset: class-per-subfolder folder, .zip of one, or CSV/Parquet manifest")
    c.add_argument("--json", metavar="FILE", help="write the full report as JSON (DESIGN §3 keys)")
    c.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    c.add_argument("--max-nfr", type=_rate, metavar="X", help="gate: fail (exit 1) if the negative flip rate exceeds X")
    c.add_argument("--min-btc", type=_rate, metavar="X", help="gate: fail (exit 1) if backward trust compatibility is below X")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")

    pr = sub.add_parser(
        "predict",
        help="run a model over a dataset and write a predictions table",
        description="Run MODEL over DATA and write a predictions table (DESIGN §3) that `compare` accepts, "
        "so runs can be split over machines and compared later.",
    )
    pr.add_argument("model", metavar="MODEL", help="model file (TorchScript or ONNX)")
    pr.add_argument("--data", required=True, metavar="DATA", help="dataset")
    pr.add_argument("--out", required=True, metavar="TABLE",
                    help="output .parquet or .csv (with --engine ray: a new folder for Parquet shards)")
    pr.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")
    pr.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="local: this process (default); ray: Ray Data actors on the cluster at $RAY_ADDRESS, "
                         "else on a Ray started on this machine")
    pr.add_argument("--workers", type=int, metavar="N", help="--engine ray: actors (default: CPUs - 1, or GPUs)")

    _add_train_parser(sub)
    _add_matrix_parser(sub)
    return p


def _add_train_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a new model that regresses less (focal distillation) or stays compatible (BCT)",
        description="Reference trainer for the sample architectures (CPU, deterministic by seed).",
    )
    t.add_argument("--old", required=True, metavar="OLD", help="the deployed model (TorchScript)")
    t.add_argument("--data", required=True, metavar="DATA", help="training dataset")
    t.add_argument("--method", required=True, choices=["plain", "distill", "focal-distillation", "bct"])
    t.add_argument("--arch", default="large-cnn", help="architecture of the new model (default: large-cnn)")
    t.add_argument("--lambda", dest="lam", type=float, default=1.0, metavar="X", help="weight of the extra loss")
    t.add_argument("--alpha", type=float, default=1.0, metavar="A", help="focal distillation: base weight")
    t.add_argument("--beta", type=float, default=5.0, metavar="B", help="focal distillation: extra weight where old is right")
    t.add_argument("--epochs", type=int, default=None, metavar="E", help="training epochs (default: the trainer's)")
    t.add_argument("--seed", type=int, default=0, metavar="S")
    t.add_argument("--out", required=True, metavar="NEW.pt", help="output TorchScript model file")


def _add_matrix_parser(sub) -> None:
    m = sub.add_parser(
        "matrix",
        help="pairwise NFR/BTC/accuracy/cross-test matrices over a set of models",
        description="Compare N >= 2 models (an ordered lineage, plus variants) on one dataset.",
    )
    m.add_argument("models", nargs="+", metavar="MODEL", help="model files or predictions tables, oldest first")
    m.add_argument("--data", metavar="DATA")
    m.add_argument("--json", metavar="FILE")


def _write_outputs(outputs: dict[str, bytes]) -> None:
    """Write every output file or none: destinations are checked first, then all are written."""
    for path in outputs:
        if os.path.isdir(path):
            raise InputError(path, "is a folder: give a file name for the output")
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(parent) and not os.access(parent, os.W_OK):
            raise InputError(path, "its folder is not writable")
    for path, data in outputs.items():
        atomic_write_bytes(path, data)


def _write_json(path: str, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def _cmd_compare(args) -> int:
    from graceful_core.sources import compare_sources
    from graceful_core.summary import text_summary

    comp = compare_sources(args.old, args.new, args.data, progress=StderrProgress(), use_cache=not args.no_cache)
    report = comp.to_report()
    gates = []
    nfr = report["negative_flip_rate"]
    btc = report["backward_trust_compatibility"]
    if args.max_nfr is not None:
        ok = nfr is not None and nfr <= args.max_nfr
        gates.append(("max-nfr", ok, f"negative flip rate {nfr} {'<=' if ok else '>'} {args.max_nfr}"))
    if args.min_btc is not None:
        ok = btc is not None and btc >= args.min_btc
        gates.append(("min-btc", ok, f"backward trust compatibility {btc} {'>=' if ok else '<'} {args.min_btc}"))
    if gates:
        report["gates"] = [{"gate": g, "passed": ok, "detail": d} for g, ok, d in gates]
    html_text = None
    if args.html:  # render everything before writing anything: no partial outputs
        from graceful_core.report_html import render_html_report
        from graceful_core.review import get_review

        html_text = render_html_report(comp, review=get_review(comp.key) if comp.key else None)
    outputs = {}
    if args.json:
        outputs[args.json] = (json.dumps(report, indent=2, allow_nan=False) + "\n").encode()
    if html_text is not None:
        outputs[args.html] = html_text.encode("utf-8")
    _write_outputs(outputs)
    print(text_summary(comp))
    failed = [d for _, ok, d in gates if not ok]
    for g, ok, d in gates:
        print(f"gate {g}: {'passed' if ok else 'FAILED'} ({d})")
    return EXIT_GATE if failed else EXIT_OK


def _cmd_predict(args) -> int:
    if args.engine == "ray":
        return _cmd_predict_ray(args)
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import write_predictions_table
    from graceful_core.models.loader import load_model

    suffix = os.path.splitext(args.out)[1].lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InputError(args.out, "output must end in .parquet or .csv")
    model = load_model(args.model)
    dataset = load_dataset(args.data)
    name = os.path.basename(args.model)
    preds = predict(model, dataset, progress=lambda d, t: _bar(name, d, t), use_cache=not args.no_cache)
    write_predictions_table(preds, args.out)
    print(f"wrote {len(preds)} predictions of {name} to {args.out}")
    return EXIT_OK


def _cmd_predict_ray(args) -> int:
    from graceful_core.distributed import predict_ray

    if args.workers is not None and args.workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {args.workers}")
    r = predict_ray(args.model, args.data, args.out, device=getattr(args, "device", None) or "cpu", actors=args.workers)
    where = f"Ray at {r.address}" if r.address else "a local Ray"
    print(f"wrote {r.n_rows} predictions of {os.path.basename(args.model)} to {r.out_dir} "
          f"({len(r.files)} Parquet shards, {r.actors} actors on {where})")
    return EXIT_OK


_BAR = StderrProgress()


def _bar(stage: str, done: int, total: int) -> None:
    _BAR(stage, done, total)


def _cmd_train(args) -> int:
    from graceful_core.training.cli_train import run_train

    return run_train(args, progress=_bar)


def _cmd_matrix(args) -> int:
    from graceful_core.lineage import STAGE_PAIRS, model_matrix_report

    def progress(stage: str, done: int, total: int) -> None:
        if stage != STAGE_PAIRS:  # the stderr bar counts images; the cross-tests take seconds
            _bar(stage, done, total)

    report = model_matrix_report(args.models, args.data, progress=progress)
    if args.json:
        _write_json(args.json, report)
    from graceful_core.lineage import matrix_text

    print(matrix_text(report))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"compare": _cmd_compare, "predict": _cmd_predict, "train": _cmd_train, "matrix": _cmd_matrix}[args.command]
    try:
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
        return 130
    except Exception as e:  # an unforeseen failure: still one line, unless debugging
        if os.environ.get("GRACEFUL_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]} "
              "(set GRACEFUL_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INPUT
