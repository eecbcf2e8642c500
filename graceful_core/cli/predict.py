"""``graceful predict MODEL --data DATA --out TABLE``: a model's predictions table, here or on a Ray cluster."""

from __future__ import annotations

import argparse
import os

from graceful_core import distributed
from graceful_core.cli.options import add_cache_option, add_run_options
from graceful_core.cli.progress import bar
from graceful_core.errors import InputError
from graceful_core.inference import predict
from graceful_core.io.datasets import load_dataset
from graceful_core.io.tables import write_predictions_table
from graceful_core.vocabulary import EXIT_OK, PARQUET_SUFFIXES, TABLE_SUFFIXES

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand's arguments."""
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
    add_cache_option(pr)
    pr.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: Ray Data actors on the cluster at $RAY_ADDRESS, "
        "else on a Ray started on this machine",
    )
    pr.add_argument("--workers", type=int, metavar="N", help="--engine ray: actors (default: CPUs - 1, or GPUs)")
    add_run_options(pr)


def run(args: argparse.Namespace) -> int:
    """Run the model and write its table; exit status 0."""
    if args.engine == "ray":
        return _run_on_ray(args)
    from graceful_core.models.loader import load_model  # imports torch: only when a model runs here

    suffix = os.path.splitext(args.out)[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(args.out, f"output must end in {' or '.join((PARQUET_SUFFIXES[0], '.csv'))}")
    model = load_model(args.model, device=args.device)
    dataset = load_dataset(args.data)
    name = os.path.basename(args.model)
    preds = predict(
        model, dataset, progress=lambda d, t: bar(name, d, t), use_cache=not args.no_cache, batch_size=args.batch_size
    )
    write_predictions_table(preds, args.out)
    print(f"wrote {len(preds)} predictions of {name} to {args.out}")
    return EXIT_OK


def _run_on_ray(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {args.workers}")
    # The devices are the Ray workers' (checked there), not this machine's: a head node without a GPU can
    # still send the work to GPU workers. "auto" asks for no GPU.
    device = "cuda" if args.device == "cuda" else "cpu"
    r = distributed.predict_ray(
        args.model, args.data, args.out, device=device, actors=args.workers, batch_size=args.batch_size
    )
    where = f"Ray at {r.address}" if r.address else "a local Ray"
    print(
        f"wrote {r.n_rows} predictions of {os.path.basename(args.model)} to {r.out_dir} "
        f"({len(r.files)} Parquet shards, {r.actors} actors on {where})"
    )
    return EXIT_OK
