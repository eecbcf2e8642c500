"""``graceful export MODEL --to onnx|pt2 --out FILE``: one model file converted, its outputs and graceful.json kept."""

from __future__ import annotations

import argparse

from graceful_core.errors import InputError
from graceful_core.vocabulary import EXIT_OK, EXPORT_FORMATS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand's arguments."""
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


def run(args: argparse.Namespace) -> int:
    """Convert the model file; exit status 0."""
    from graceful_core.training.export import convert_model_file  # imports torch: only when converting

    want = {"onnx": ".onnx", "pt2": ".pt2"}[args.to]
    if not args.out.lower().endswith(want):
        raise InputError(args.out, f"the output of --to {args.to} must end in {want}")
    print(convert_model_file(args.model, args.to, args.out))
    return EXIT_OK
