"""Where models run: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the ``--device`` option and ``device=``).

- ``"auto"``: CUDA when ``torch.cuda.is_available()`` (TorchScript, ``.pt2``, modules), and
  onnxruntime's ``CUDAExecutionProvider`` when onnxruntime offers it (ONNX); otherwise the CPU.
- ``"cpu"``: the CPU everywhere.
- ``"cuda"`` (or ``"cuda:N"``): a CUDA device; asking for one where there is none is an
  :class:`~graceful_core.errors.InputError` (the CLI's exit 2), never a silent fallback.

Inputs are moved to the model's device batch by batch and outputs come back as CPU
NumPy arrays, so the rest of graceful never sees a device. Nothing here is CPU-only:
the same code runs unchanged on a GPU machine (tests exercise the choice logic by
monkeypatching :func:`torch.cuda.is_available` and the provider list).

Examples
--------
>>> resolve_device("cpu")
'cpu'
>>> onnx_providers("cpu")
['CPUExecutionProvider']
"""

from __future__ import annotations

import re

from graceful_core.errors import InputError

__all__ = ["DEVICES", "validate_device", "resolve_device", "onnx_providers", "require_device"]

#: The values of ``--device`` (``"cuda:N"`` is accepted too).
DEVICES = ("auto", "cpu", "cuda")

_CUDA_N = re.compile(r"^cuda(:\d+)?$")
_ORT_CUDA = "CUDAExecutionProvider"
_ORT_CPU = "CPUExecutionProvider"


def validate_device(device: str) -> str:
    """``device`` lower-cased if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises
    ------
    InputError
        Any other value (no file at fault: the message names the option).
    """
    d = str(device).strip().lower()
    if d in ("auto", "cpu") or _CUDA_N.match(d):
        return d
    raise InputError(None, f"--device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")


def _torch_cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _check_cuda_index(d: str) -> None:
    if ":" in d:
        import torch

        n = torch.cuda.device_count()
        if int(d.split(":")[1]) >= n:
            raise InputError(None, f"--device {d}: this machine has {n} CUDA device(s)")


def resolve_device(device: str = "auto") -> str:
    """The torch device string to run a torch model on: ``"cpu"`` or ``"cuda[:N]"``.

    Raises
    ------
    InputError
        ``cuda`` was asked for and ``torch.cuda.is_available()`` is False.
    """
    d = validate_device(device)
    if d == "auto":
        return "cuda" if _torch_cuda_available() else "cpu"
    if d.startswith("cuda"):
        if not _torch_cuda_available():
            raise InputError(
                None,
                f"--device {d}: CUDA is not available here (torch.cuda.is_available() is False); "
                "use --device cpu or auto",
            )
        _check_cuda_index(d)
    return d


def onnx_providers(device: str = "auto") -> list[str]:
    """onnxruntime execution providers for ``device``, in order of preference.

    ``auto`` uses ``CUDAExecutionProvider`` when onnxruntime offers it (the onnxruntime-gpu
    package on a CUDA machine), then the CPU; ``cuda`` requires it.

    Raises
    ------
    InputError
        ``cuda`` was asked for and onnxruntime has no CUDA provider.
    """
    d = validate_device(device)
    if d == "cpu":
        return [_ORT_CPU]
    has_cuda = _ORT_CUDA in _ort_providers()
    if d == "auto":
        return [_ORT_CUDA, _ORT_CPU] if has_cuda else [_ORT_CPU]
    if not has_cuda:
        raise InputError(
            None,
            f"--device {d}: onnxruntime has no CUDAExecutionProvider here "
            "(install onnxruntime-gpu on a CUDA machine); use --device cpu or auto",
        )
    return [_ORT_CUDA, _ORT_CPU]


def require_device(device: str) -> str:
    """Check up front that ``device`` exists for torch or onnxruntime (the CLI calls this first).

    Returns the validated device string. ``auto`` and ``cpu`` always pass; ``cuda`` passes
    when torch or onnxruntime can use CUDA (each model back end checks its own again).

    Raises
    ------
    InputError
        ``cuda`` where neither torch nor onnxruntime has CUDA, or a bad value.
    """
    d = validate_device(device)
    if d.startswith("cuda") and not _torch_cuda_available() and _ORT_CUDA not in _ort_providers():
        raise InputError(
            None,
            f"--device {d}: no CUDA device is available here (torch.cuda.is_available() is False "
            "and onnxruntime has no CUDAExecutionProvider); use --device cpu or auto",
        )
    return d
