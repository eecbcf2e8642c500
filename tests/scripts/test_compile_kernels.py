"""scripts/compile_kernels.py runs every numba kernel once on a case whose answer is known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compile_kernels.py"


def test_every_kernel_runs_and_gives_the_known_answer(capsys):
    spec = importlib.util.spec_from_file_location("compile_kernels", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()  # asserts each kernel's answer on its known case
    assert "numba kernels compiled or loaded" in capsys.readouterr().out
