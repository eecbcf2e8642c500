"""``graceful train``: the command-line face of :mod:`graceful_core.training.update`."""

from __future__ import annotations

import argparse
from typing import Any

from graceful_core.cli.command_name import default_prog
from graceful_core.cli.options import add_run_options
from graceful_core.cli.progress import bar
from graceful_core.errors import InputError
from graceful_core.vocabulary import EXIT_OK, TRAINING_METHODS, StageProgress


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand's arguments."""
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
    add_run_options(t, batch_size=False)


def epoch_table(history: list[dict[str, Any]]) -> str:
    """Per-epoch error rate and NFR (from the flip monitor) as a small text table."""
    lines = ["epoch  error rate     NFR  neg. flips"]
    for h in history:
        if "nfr" in h:
            lines.append(
                f"{h['epoch']:>5}  {100 * h['error_rate']:>9.2f}%  {100 * h['nfr']:>5.2f}%  {h['n_negative_flips']:>10}"
            )
    return "\n".join(lines)


def run_train(args: argparse.Namespace, progress: StageProgress | None = None) -> int:
    """Train per ``args`` (see ``python -m graceful_core train --help``) and write ``args.out``."""
    from graceful_core.training.update import TrainParams, train_update  # imports torch: only when training

    if not str(args.out).lower().endswith(".pt"):
        raise InputError(args.out, "output must be a TorchScript file ending in .pt")
    params = TrainParams(
        method=args.method,
        arch=args.arch,
        lam=args.lam,
        alpha=args.alpha,
        beta=args.beta,
        epochs=args.epochs if args.epochs is not None else TrainParams.epochs,
        seed=args.seed,
        **{
            k: v
            for k, v in (
                ("temperature", getattr(args, "temperature", None)),
                ("margin", getattr(args, "margin", None)),
                ("p", getattr(args, "power", None)),
                ("n_references", getattr(args, "references", None)),
            )
            if v is not None
        },
    )
    references = getattr(args, "reference_models", None)
    if references and params.method != "elodi":
        raise InputError(None, "--reference-models is for --method elodi only")
    try:
        params.validate()
    except ValueError as e:
        raise InputError(None, str(e)) from None
    monitor = getattr(args, "monitor", None)
    result = train_update(
        args.old,
        args.data,
        args.out,
        params,
        progress=progress,
        monitor=monitor,
        device=getattr(args, "device", "cpu"),
        reference_models=references,
        init_from=getattr(args, "init_from", None),
    )
    if monitor is not None:
        print(epoch_table(result.history))
    last = result.history[-1] if result.history else {}
    acc = f", final train accuracy {last['train_accuracy']:.4f}" if "train_accuracy" in last else ""
    print(
        f"trained {params.method} ({params.arch}, {params.epochs} epochs, seed {params.seed}) "
        f"in {result.seconds:.1f} s{acc}; wrote {args.out}"
    )
    print(f"next: {default_prog()} compare {args.old} {args.out} --data <test data>")
    return EXIT_OK


def run_train_command(args: argparse.Namespace) -> int:
    """``graceful train``: :func:`run_train` with the command line's stderr progress bar."""
    return run_train(args, progress=bar)
