"""The command line's model options: export, --device, --batch-size, the app subcommand, help names."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from graceful_core.cli.commands import APP_ENV, app_command, app_environment, build_parser, default_prog
from graceful_core.errors import InputError
from tests.helpers import DIGITS_NEW as NEW
from tests.helpers import DIGITS_NEW_CSV as NEW_CSV
from tests.helpers import DIGITS_OLD as OLD
from tests.helpers import DIGITS_OLD_CSV as OLD_CSV
from tests.helpers import DIGITS_TEST as TEST_DATA
from tests.helpers import ROOT, SAMPLE, run_cli


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def needs_sample():
    if not (OLD.is_file() and NEW.is_file() and TEST_DATA.is_dir()):
        pytest.skip("bundled sample data is missing")


def one_error_line(r: subprocess.CompletedProcess) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


# ----------------------------------------------------------------- export
def test_export_to_pt2_and_onnx_keeps_the_flips(needs_sample, cache, tmp_path):
    outs = {}
    for to in ("pt2", "onnx"):
        for src in (OLD, NEW):
            out = tmp_path / f"{src.stem}.{to}"
            r = run_cli("export", src, "--to", to, "--out", out, cache=cache)
            assert r.returncode == 0, r.stderr
            assert "with its embedding" in r.stdout and out.is_file()
        report = tmp_path / f"{to}.json"
        r = run_cli(
            "compare",
            tmp_path / f"old.{to}",
            tmp_path / f"new.{to}",
            "--data",
            TEST_DATA,
            "--json",
            report,
            cache=cache,
        )
        assert r.returncode == 0, r.stderr
        outs[to] = json.loads(report.read_text())
    ref = tmp_path / "pt.json"
    assert run_cli("compare", OLD, NEW, "--data", TEST_DATA, "--json", ref, cache=cache).returncode == 0
    ref = json.loads(ref.read_text())
    for to, rep in outs.items():
        assert rep["negative_flips"] == ref["negative_flips"], to
        assert rep["transition_matrix"] == ref["transition_matrix"], to
        assert rep["compatibility"]["top1"] == pytest.approx(ref["compatibility"]["top1"]), to


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["export", "nope.pt", "--to", "pt2", "--out", "{tmp}/x.pt2"], "nope.pt"),
        (["export", str(OLD), "--to", "pt2", "--out", "{tmp}/x.onnx"], "x.onnx"),
        (["export", str(OLD_CSV), "--to", "onnx", "--out", "{tmp}/x.onnx"], "old.csv"),
    ],
    ids=["missing", "wrong-suffix", "a-table"],
)
def test_export_bad_input_exits_2(needs_sample, cache, tmp_path, argv, culprit):
    r = run_cli(*[a.format(tmp=tmp_path) for a in argv], cache=cache)
    assert r.returncode == 2
    assert culprit in one_error_line(r)
    assert not (tmp_path / "x.pt2").exists() and not (tmp_path / "x.onnx").exists()


def test_export_onnx_to_pt2_says_it_is_not_supported(needs_sample, cache, tmp_path):
    onnx = tmp_path / "new.onnx"
    assert run_cli("export", NEW, "--to", "onnx", "--out", onnx, cache=cache).returncode == 0
    r = run_cli("export", onnx, "--to", "pt2", "--out", tmp_path / "new.pt2", cache=cache)
    assert r.returncode == 2 and "not supported" in one_error_line(r)


# ----------------------------------------------------------------- devices and batch size
NO_CUDA = {"CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, so the test means the same everywhere


CUDA_COMMANDS = ("compare", "predict", "matrix", "train")
#: Runs each command line (JSON list of argument lists) with :func:`tests.helpers.run_cli` in this one process and
#: prints the results as JSON: one interpreter (and one torch import) for all four commands instead of four.
RUN_EACH = """
import json, sys
from tests.helpers import DIGITS_NEW as NEW
from tests.helpers import DIGITS_NEW_CSV as NEW_CSV
from tests.helpers import DIGITS_OLD as OLD
from tests.helpers import DIGITS_OLD_CSV as OLD_CSV
from tests.helpers import DIGITS_TEST as TEST_DATA
from tests.helpers import ROOT, SAMPLE, run_cli
runs = [run_cli(*argv, cache=sys.argv[2]) for argv in json.loads(sys.argv[1])]
print(json.dumps([[r.returncode, r.stdout, r.stderr] for r in runs]))
"""


@pytest.fixture(scope="module")
def cuda_runs(needs_sample, cache, tmp_path_factory):
    """Each command with ``--device cuda`` in a fresh interpreter whose CUDA is hidden before torch starts.

    Returns ``{command: (result, its output folder)}`` and the interpreter's own stderr (what only a
    process shows: anything printed outside the commands' captured streams).
    """
    argvs, outs = [], {}
    for command in CUDA_COMMANDS:
        tmp = outs[command] = tmp_path_factory.mktemp(f"cuda-{command}")
        out = tmp / "out.json"
        argv = {
            "compare": ["compare", OLD, NEW, "--data", TEST_DATA, "--json", out],
            "predict": ["predict", OLD, "--data", TEST_DATA, "--out", tmp / "p.parquet"],
            "matrix": ["matrix", OLD, NEW, "--data", TEST_DATA, "--json", out],
            "train": ["train", "--old", OLD, "--data", TEST_DATA, "--method", "plain", "--out", tmp / "n.pt"],
        }[command]
        argvs.append([str(a) for a in [*argv, "--device", "cuda"]])
    proc = subprocess.run(
        [sys.executable, "-c", RUN_EACH, json.dumps(argvs), str(cache)],
        cwd=ROOT,
        env={**os.environ, **NO_CUDA, "GRACEFUL_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    runs = {
        c: (subprocess.CompletedProcess(["graceful", *a], code, out, err), outs[c])
        for c, a, (code, out, err) in zip(CUDA_COMMANDS, argvs, results, strict=True)
    }
    return runs, proc.stderr


@pytest.mark.parametrize("command", CUDA_COMMANDS)
def test_device_cuda_without_cuda_exits_2_with_one_line(cuda_runs, command):
    runs, process_stderr = cuda_runs
    r, tmp = runs[command]
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "cuda" in one_error_line(r).lower()
    assert "Traceback" not in process_stderr, process_stderr
    assert not (tmp / "out.json").exists() and not (tmp / "p.parquet").exists() and not (tmp / "n.pt").exists()


def test_device_cpu_and_a_batch_size_give_the_same_report(needs_sample, cache, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli("compare", OLD, NEW, "--data", TEST_DATA, "--json", a, "--no-cache", cache=cache).returncode == 0
    r = run_cli(
        "compare",
        OLD,
        NEW,
        "--data",
        TEST_DATA,
        "--json",
        b,
        "--no-cache",
        "--device",
        "cpu",
        "--batch-size",
        "7",
        cache=cache,
    )
    assert r.returncode == 0, r.stderr
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["negative_flips"] == rb["negative_flips"] and ra["transition_matrix"] == rb["transition_matrix"]
    assert rb["compatibility"]["top1"] == pytest.approx(ra["compatibility"]["top1"])


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_batch_size_must_be_positive(cache, value):
    r = run_cli("compare", OLD_CSV, NEW_CSV, "--batch-size", value, cache=cache)
    assert r.returncode == 2 and "positive whole number" in r.stderr


def test_device_value_is_checked(cache):
    r = run_cli("compare", OLD_CSV, NEW_CSV, "--device", "gpu", cache=cache)
    assert r.returncode == 2 and "--device must be one of" in one_error_line(r)


# ----------------------------------------------------------------- help and names
def test_prog_reads_well_for_both_ways_of_calling():
    assert default_prog("/home/u/.venv/bin/graceful") == "graceful"
    assert default_prog("/work/graceful_core/__main__.py") == "python -m graceful_core"
    assert default_prog("-m") == "python -m graceful_core"
    assert build_parser("graceful").format_help().startswith("usage: graceful ")
    sub = build_parser("graceful")._subparsers._group_actions[0].choices
    assert "usage: graceful export" in sub["export"].format_help()
    assert "Example: graceful compare sample_data" in sub["compare"].format_help()


def test_installed_command_help(tmp_path):
    """What the console script `graceful = graceful_core.cli.commands:main` runs, under that name."""
    code = (
        "import sys; sys.argv[0] = '/venv/bin/graceful'; from graceful_core.cli.commands import main; sys.exit(main())"
    )
    r = subprocess.run([sys.executable, "-c", code, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: graceful ")
    for command in ("compare", "predict", "train", "matrix", "export", "app"):
        assert command in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "graceful_core", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m graceful_core ")


def test_the_installed_graceful_command_runs():
    """README's setup (scripts/setup_env.sh: ``pip install -e . --no-deps``) installs ``graceful`` next to the
    interpreter; the real script, not a simulation."""
    script = Path(sys.executable).parent / "graceful"
    assert script.is_file(), f"{script} missing: run scripts/setup_env.sh (pip install -e . --no-deps)"
    r = subprocess.run([str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("usage: graceful "), r.stderr


def test_pyproject_declares_the_console_script():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["graceful"] == "graceful_core.cli.commands:main"


# ----------------------------------------------------------------- app
def test_app_environment(needs_sample, tmp_path):
    env = app_environment(str(OLD), str(NEW), str(TEST_DATA))
    assert env == {
        APP_ENV["old"]: str(OLD.resolve()),
        APP_ENV["new"]: str(NEW.resolve()),
        APP_ENV["data"]: str(TEST_DATA.resolve()),
    }
    assert app_environment(None, None, None) == {}
    assert APP_ENV["data"] not in app_environment(str(OLD_CSV), str(NEW_CSV), None)
    for args, fragment in [
        ((str(OLD), None, None), "both OLD and NEW"),
        ((str(OLD), str(NEW), None), "needs a dataset"),
        ((str(OLD), str(tmp_path / "nope.pt"), str(TEST_DATA)), "no such file"),
        ((None, None, str(TEST_DATA)), "--data needs OLD and NEW"),
    ]:
        with pytest.raises(InputError, match=fragment):
            app_environment(*args)


def test_app_command_line():
    args = build_parser("graceful").parse_args(["app", "a.pt", "b.pt", "--data", "d", "--port", "8600"])
    cmd = app_command(args)
    assert cmd[:3] == [sys.executable, "-m", "graceful_ui.serve"]
    assert cmd[cmd.index("--server.port") + 1] == "8600" and "--server.headless" in cmd


def test_app_bad_input_exits_2_before_starting(cache, tmp_path):
    r = run_cli("app", OLD, tmp_path / "nope.pt", "--data", TEST_DATA, cache=cache)
    assert r.returncode == 2 and "nope.pt" in one_error_line(r)


def test_cli_spec_is_the_apps_default(needs_sample, monkeypatch, tmp_path):
    from graceful_ui.bundled_specs import bundled_specs, cli_spec
    from graceful_ui.spec_ids import resolve_spec

    monkeypatch.delenv(APP_ENV["old"], raising=False)
    assert cli_spec() is None
    for key, value in app_environment(str(OLD), str(NEW), str(TEST_DATA)).items():
        monkeypatch.setenv(key, value)
    spec = cli_spec()
    assert spec.id.startswith("cli:") and spec.old == str(OLD.resolve()) and spec.data == str(TEST_DATA.resolve())
    assert "(command line)" in spec.label
    assert bundled_specs()[0] == spec and resolve_spec(spec.id) == spec
    # an explicit sample folder lists only its pairs: Fashion-MNIST's first when it is there, then digits'
    assert "sample:new" in [s.id for s in bundled_specs(SAMPLE)] and all(
        not s.id.startswith("cli:") for s in bundled_specs(SAMPLE)
    )


def test_app_opens_on_the_given_pair(needs_sample, monkeypatch, tmp_path):
    """The dashboard (Streamlit AppTest) opens on the pair handed over by `graceful app` (here .pt2 files)."""
    from graceful_core.training.export import convert_model_file
    from tests.apptest import run_app

    for src in (OLD, NEW):
        convert_model_file(src, "pt2", tmp_path / f"{src.stem}.pt2")
    for key, value in app_environment(str(tmp_path / "old.pt2"), str(tmp_path / "new.pt2"), str(TEST_DATA)).items():
        monkeypatch.setenv(key, value)
    at = run_app(sample=None)  # the app's own default; fails on any exception box
    assert at.session_state["cmp"].startswith("cli:")
    captions = " ".join(c.value for c in at.caption)
    assert "old.pt2 → new.pt2" in captions and "command line" in captions
    from graceful_core.comparing.sources import compare_sources

    nfr = compare_sources(OLD, NEW, TEST_DATA).to_report()["negative_flip_rate"]  # the TorchScript originals
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Negative flip rate (NFR)"] == f"{100 * nfr:.2f} %"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_subcommand_starts_the_server(needs_sample, cache, tmp_path):
    """Start `graceful app OLD NEW --data DATA`, wait for the health check, stop it."""
    port = _free_port()
    env = dict(os.environ, GRACEFUL_CACHE_DIR=str(cache))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graceful_core",
            "app",
            str(OLD),
            str(NEW),
            "--data",
            str(TEST_DATA),
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 600  # ends at the health answer or the exit; the limit only stops a hang
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == "ok", (proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
