"""Download file names name the comparison, and stay safe file names whatever the model is called."""

from __future__ import annotations

import re

from graceful_ui.downloads import download_name


def test_names_carry_both_models_and_the_kind():
    assert download_name("old.pt", "new-bct.pt", "report", "html") == "graceful-old-vs-new-bct-report.html"
    assert download_name("v1.onnx", "v2.onnx", "samples", "csv") != download_name(
        "v1.onnx", "v3.onnx", "samples", "csv"
    )


def test_hostile_or_empty_names_give_a_plain_file_name():
    for old, new in [("../../etc/passwd", "a b/c?.pt"), ("", ".pt"), ("é" * 300, "x" * 300 + ".pt")]:
        name = download_name(old, new, "report", "json")
        assert re.fullmatch(r"graceful-[A-Za-z0-9._-]+-vs-[A-Za-z0-9._-]+-report\.json", name), name
        assert "/" not in name and len(name) < 200
