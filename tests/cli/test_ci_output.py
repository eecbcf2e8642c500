"""CI output of `compare`: GitHub annotations parsed back, JUnit XML read by a parser, --quiet, progress."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graceful_core.cli.commands import main
from graceful_core.report.ci import Gate, github_annotations, junit_xml

#: A GitHub Actions workflow command: ::error title=T::message (properties and message %-escaped).
COMMAND = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


def _unescape(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def parse_annotations(stdout: str) -> list[tuple[str, dict[str, str], str]]:
    """(level, properties, message) of every workflow command in ``stdout``."""
    out = []
    for line in stdout.splitlines():
        m = COMMAND.match(line)
        if m:
            props = dict(p.split("=", 1) for p in m.group(2).split(",")) if m.group(2) else {}
            out.append((m.group(1), {k: _unescape(v) for k, v in props.items()}, _unescape(m.group(3))))
    return out


def _site_tables(tmp_path: Path) -> tuple[Path, Path]:
    """Labelled tables whose negative flips concentrate at site 'b' (a significant slice)."""
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    site = np.where(np.arange(n) < 100, "b", "a")
    old = y.copy()
    new = y.copy()
    new[:40] = (y[:40] + 1) % 3  # 40 negative flips at site b
    new[300:306] = (y[300:306] + 1) % 3  # 6 elsewhere
    ids = [f"s{i}" for i in range(n)]
    pd.DataFrame({"id": ids, "label": y, "pred": old, "site": site}).to_csv(tmp_path / "old.csv", index=False)
    pd.DataFrame({"id": ids, "label": y, "pred": new}).to_csv(tmp_path / "new.csv", index=False)
    return tmp_path / "old.csv", tmp_path / "new.csv"


def test_github_annotations_one_per_failed_gate_and_per_slice_over_its_gate(tmp_path, capsys):
    old, new = _site_tables(tmp_path)
    rc = main(
        [
            "compare",
            str(old),
            str(new),
            "--max-nfr",
            "0.05",
            "--min-btc",
            "0.5",
            "--max-slice-nfr",
            "0.1",
            "--format",
            "github",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    got = parse_annotations(out)
    titles = [p["title"] for _, p, _ in got]
    assert all(level == "error" for level, _, _ in got)
    assert titles.count("graceful gate max-nfr") == 1  # NFR 46/600 = 7.67 % > 5 %
    assert "graceful gate min-btc" not in titles  # passed: no annotation
    slices = [msg for _, p, msg in got if p["title"] == "graceful gate max-slice-nfr"]
    assert len(slices) == 2 and "site = b" in slices[1]  # the gate's line, then its one offending slice
    nfr = [msg for _, p, msg in got if p["title"] == "graceful gate max-nfr"][0]
    assert nfr == "negative flip rate (NFR) 7.67 % > 5.00 %"  # % survives the escaping


def test_annotations_escape_what_github_decodes():
    line = github_annotations([Gate("x", False, "50% a\nb", ("c:d",))])
    assert line == ["::error title=graceful gate x::50%25 a%0Ab", "::error title=graceful gate x::c:d"]
    assert parse_annotations("\n".join(line))[0][2] == "50% a\nb"


def test_junit_xml_one_testcase_per_gate(tmp_path, capsys):
    old, new = _site_tables(tmp_path)
    rc = main(
        [
            "compare",
            str(old),
            str(new),
            "--max-nfr",
            "0.05",
            "--min-btc",
            "0.5",
            "--max-churn",
            "0.5",
            "--junit",
            str(tmp_path / "gates.xml"),
        ]
    )
    assert rc == 1
    root = ET.parse(tmp_path / "gates.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["max-nfr", "min-btc", "max-churn"]
    assert int(suite.get("tests")) == 3 and int(suite.get("failures")) == 1 == int(root.get("failures"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["max-nfr"]
    assert failed[0].find("failure").get("message").startswith("negative flip rate (NFR) 7.67 %")
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["labels"] == "true"


def test_junit_without_gates_is_an_empty_valid_suite():
    root = ET.fromstring(junit_xml([]).split("\n", 1)[1])
    assert root.find("testsuite").get("tests") == "0"


def test_quiet_prints_only_failed_gates(tmp_path, capsys):
    old, new = _site_tables(tmp_path)
    rc = main(["compare", str(old), str(new), "--max-nfr", "0.05", "--min-btc", "0.5", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 1
    assert cap.out.splitlines() == ["gate max-nfr: FAILED (negative flip rate (NFR) 7.67 % > 5.00 %)"]


def test_progress_of_the_long_stages_reaches_the_api_callback():
    import graceful_core

    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 5)).astype(np.float32)

    import torch

    class Net(torch.nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.e, self.h = torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)

        def embed(self, t):
            return self.e(t)

        def forward(self, t):
            return self.h(self.e(t))

    seen = []
    graceful_core.compare(Net(0), Net(1), (torch.from_numpy(x), y), progress=lambda s, d, t: seen.append((s, d, t)))
    stages = [s for s, _, _ in seen]
    assert "embedding cross-test" in stages and "regression slices (clustering)" in stages
    for stage in ("embedding cross-test", "regression slices (clustering)"):
        assert [(d, t) for s, d, t in seen if s == stage] == [(0, 1), (1, 1)]


def test_stderr_progress_is_a_bar_on_a_terminal_and_lines_in_a_log():
    from graceful_core.cli.progress import StderrProgress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, log = Tty(), io.StringIO()
    for stream in (tty, log):
        bar = StderrProgress(stream)
        bar("inference", 50, 100)
        bar("inference", 100, 100)
        bar("embedding cross-test", 0, 1)
        bar("embedding cross-test", 1, 1)
    assert "\r" in tty.getvalue() and "[###" in tty.getvalue()
    lines = log.getvalue().splitlines()
    assert lines[0] == "inference: running on 100 images..." and lines[2] == "embedding cross-test: running..."
    assert re.fullmatch(r"embedding cross-test: done in \d+\.\d s", lines[3])


def test_stages_that_take_turns_start_and_end_once_in_a_log():
    """A comparison runs its two models batch by batch: each model's stage starts once and ends once."""
    from graceful_core.cli.progress import StderrProgress

    log = io.StringIO()
    bar = StderrProgress(log)
    for done in (256, 512, 540):
        bar("old.pt", done, 540)
        bar("new.pt", done, 540)
    bar("old.pt", 100, 540)  # the same stage again after it ended: a new run, started again
    lines = log.getvalue().splitlines()
    assert lines[:2] == ["old.pt: running on 540 images...", "new.pt: running on 540 images..."]
    assert re.fullmatch(r"old\.pt: 540/540 done in \d+\.\d s", lines[2])
    assert re.fullmatch(r"new\.pt: 540/540 done in \d+\.\d s", lines[3])
    assert lines[4:] == ["old.pt: running on 540 images..."]


@pytest.mark.parametrize("flag", ["--junit", "--json"])
def test_ci_outputs_are_not_written_on_bad_input(tmp_path, flag, capsys):
    old, _ = _site_tables(tmp_path)
    assert main(["compare", str(old), str(tmp_path / "missing.csv"), flag, str(tmp_path / "o.xml")]) == 2
    assert not (tmp_path / "o.xml").exists()
