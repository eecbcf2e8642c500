"""``python -m graceful_core train``: the command-line face of :mod:`graceful_core.training.update`."""

from __future__ import annotations

import argparse

from graceful_core.cli.command_name import default_prog
from graceful_core.errors import InputError
from graceful_core.training.update import TrainParams, train_update
from graceful_core.vocabulary import EXIT_OK, StageProgress


def epoch_table(history: list[dict]) -> str:
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
