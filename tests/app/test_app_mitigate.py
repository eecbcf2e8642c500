"""AppTest of the Mitigate page: a short training run shows the core's numbers; Cancel writes no model.

The expected numbers are computed here with ``compare_sources`` on the model files the
run left in the cache folder, and formatted in the test itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.apptest import ROOT, check, run_app

OLD = ROOT / "sample_data" / "models" / "old.pt"
TEST_DATA = ROOT / "sample_data" / "digits" / "test"
JOB = "_mitigate_job"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A fresh cache folder per test, so trained files and the run index start empty."""
    if not OLD.is_file() or not TEST_DATA.is_dir():
        pytest.skip("bundled sample data is missing")
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def open_page():
    at = run_app(page="mitigate_page.py")
    assert at.title[0].value == "Mitigate"
    return at


def wait_for_job(at, timeout: float = 900.0):
    job = at.session_state[JOB]
    deadline = time.monotonic() + timeout
    while job.thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not job.thread.is_alive(), "training did not finish in time"
    check(at.run())
    return job.snapshot()


def test_training_shows_the_core_numbers_for_the_trained_model_and_its_baseline(_own_cache):
    from graceful_core.comparing.sources import compare_sources

    at = open_page()
    at.radio(key="mit_method").set_value("focal-distillation").run()
    at.number_input(key="mit_epochs").set_value(2).run()
    at.slider(key="mit_lam").set_value(0.5).run()
    check(at.button(key="mit_train_btn").click().run())
    snap = wait_for_job(at)
    assert snap.status == "done", snap.message

    models = _own_cache / "models"
    trained = sorted(models.glob("focal-distillation-*.pt"))
    plain = sorted(models.glob("plain-*.pt"))
    assert len(trained) == 1 and len(plain) == 1
    after = compare_sources(OLD, trained[0], TEST_DATA)
    before = compare_sources(OLD, plain[0], TEST_DATA)

    shown = {m.label: m for m in at.metric}
    s = after.summary
    assert shown["Negative flip rate (NFR)"].value == pct(s.negative_flip_rate)
    assert shown["New error rate"].value == pct(s.new_error_rate)
    assert shown["Backward trust (BTC)"].value == pct(s.backward_trust_compatibility)
    assert shown["Cross-test Hit@1 (new→old)"].value == pct(after.compatibility.scores["top1"]["new_old"])
    b = before.summary
    want_delta = f"{100 * (s.negative_flip_rate - b.negative_flip_rate):+.2f} pp"
    assert shown["Negative flip rate (NFR)"].delta == want_delta

    table = at.table[0].value
    col_before, col_after = table["old → plain new (baseline)"].tolist(), table["old → focal-distillation new"].tolist()
    rows = table["metric"].tolist()
    expect = {
        "Negative flip rate (NFR)": (pct(b.negative_flip_rate), pct(s.negative_flip_rate)),
        "Negative flips": (str(b.n_negative_flips), str(s.n_negative_flips)),
        "New error rate": (pct(b.new_error_rate), pct(s.new_error_rate)),
        "Backward trust (BTC)": (pct(b.backward_trust_compatibility), pct(s.backward_trust_compatibility)),
        "Cross-test Hit@1 (new→old)": (
            pct(before.compatibility.scores["top1"]["new_old"]),
            pct(after.compatibility.scores["top1"]["new_old"]),
        ),
        "Self-test Hit@1 (old→old)": (
            pct(before.compatibility.scores["top1"]["old_old"]),
            pct(after.compatibility.scores["top1"]["old_old"]),
        ),
    }
    for name, (want_b, want_a) in expect.items():
        i = rows.index(name)
        assert (col_before[i], col_after[i]) == (want_b, want_a), name

    # the per-epoch chart (FlipMonitor on the evaluation data): one line per model and panel, two epochs each,
    # the last epoch's NFR and error rate equal to the comparison of the saved model
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    epochs = next(f for f in figs if f["layout"]["xaxis"]["title"]["text"] == "epoch")
    lines = {(t["name"], t["xaxis"]): t for t in epochs["data"]}
    assert len(lines) == 4 and all(t["x"] == [1, 2] for t in lines.values())
    trained_name = next(n for n, _ in lines if n.startswith("focal-distillation"))
    for name, comp in ((trained_name, after), ("plain (baseline)", before)):
        nfr, err = lines[(name, "x")]["y"][-1], lines[(name, "x2")]["y"][-1]
        assert nfr == pytest.approx(100 * comp.summary.negative_flip_rate), name
        assert err == pytest.approx(100 * comp.summary.new_error_rate), name

    # the run index remembers both models, and the trained one opens on the Overview page
    runs = json.loads((_own_cache / "mitigation-runs.json").read_text())
    assert {Path(r["model"]).name for r in runs} == {trained[0].name, plain[0].name}
    at.selectbox(key="mit_pick").set_value(f"trained:{trained[0].stem}")
    check(at.button(key="mit_open").click().run())
    assert at.title[0].value == "Overview"
    assert (
        at.query_params.get("cmp") == [f"trained:{trained[0].stem}"]
        or at.query_params.get("cmp") == f"trained:{trained[0].stem}"
    )
    overview = {m.label: m.value for m in at.metric}
    assert overview["Negative flip rate (NFR)"] == pct(s.negative_flip_rate)


def test_cancel_stops_training_and_writes_no_model(_own_cache):
    at = open_page()
    at.radio(key="mit_method").set_value("focal-distillation").run()
    at.number_input(key="mit_epochs").set_value(500).run()
    check(at.button(key="mit_train_btn").click().run())
    at.button(key="mit_cancel").click().run()
    snap = wait_for_job(at)
    assert snap.status == "cancelled"
    assert any("cancelled" in w.value for w in at.warning)
    models = _own_cache / "models"
    assert not models.exists() or not any(models.iterdir()), list(models.iterdir())
    assert not (_own_cache / "mitigation-runs.json").exists()


def test_lambda_sweep_fills_the_trade_off_plot(_own_cache):
    from graceful_ui.training import SWEEP_LAMBDAS

    at = open_page()
    at.radio(key="mit_method").set_value("distill").run()
    at.number_input(key="mit_epochs").set_value(1).run()
    at.button(key="mit_sweep_btn").click().run()
    snap = wait_for_job(at)
    assert snap.status == "done", snap.message
    assert [r["params"]["lam"] for r in snap.records] == list(SWEEP_LAMBDAS)
    runs = json.loads((_own_cache / "mitigation-runs.json").read_text())
    methods = sorted(r["params"]["method"] for r in runs)
    assert methods == ["distill"] * len(SWEEP_LAMBDAS) + ["plain"]  # one shared, cached baseline
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig = next(f for f in figs if f["layout"]["xaxis"]["title"]["text"].endswith("error rate (%)"))  # trade-off plot
    xs = [x for trace in fig["data"] for x in trace["x"]]
    assert len(xs) == len(SWEEP_LAMBDAS) + 1
    want = sorted(round(100 * r["metrics"]["new_error_rate"], 9) for r in runs)
    assert sorted(round(x, 9) for x in xs) == want


def test_a_training_queued_behind_another_session_says_so_then_runs(_own_cache):
    """Trainings of one server run one at a time: a queued job's progress bar says it waits."""
    from graceful_core.training import trainer

    at = open_page()
    at.number_input(key="mit_epochs").set_value(1).run()
    trainer._TRAIN_LOCK.acquire()  # another session is training
    try:
        at.button(key="mit_train_btn").click().run()
        job = at.session_state[JOB]
        deadline = time.monotonic() + 600  # ends when the job says queued; the limit only stops a hang
        while "queued" not in job.snapshot().text and time.monotonic() < deadline:
            time.sleep(0.1)
        check(at.run())
        bars = [p.proto.text for p in at.get("progress")]
        assert any("queued: another session is training" in t for t in bars), bars
        assert job.thread.is_alive()
    finally:
        trainer._TRAIN_LOCK.release()
    snap = wait_for_job(at)
    assert snap.status == "done" and snap.records, snap.message


def test_fashion_trains_from_the_bundled_new_model_by_default(_own_cache):
    """On Fashion-MNIST (2,000 training photos) the default run starts from new.pt at the warm-start learning rate
    for 2 epochs (update and baseline); unticked, it trains from scratch for the sample's full budget."""
    from graceful_core.io.samples import FASHION_TRAIN_EPOCHS
    from graceful_core.training.update import WARM_START_LR, TrainParams

    at = open_page()
    at.radio(key="w_mit_sample").set_value("fashion").run()
    assert at.checkbox(key="mit_warm").value is True
    assert at.number_input(key="mit_epochs").value == 2
    check(at.button(key="mit_train_btn").click().run())
    job = at.session_state[JOB]
    job.cancel()
    req = job.requests[0]
    assert Path(req.init_from) == ROOT / "sample_data" / "fashion" / "models" / "new.pt"
    assert req.params.lr == WARM_START_LR and req.params.epochs == 2 and req.params.arch == "large-cnn-28"
    assert wait_for_job(at).status == "cancelled"
    at.checkbox(key="mit_warm").uncheck().run()
    at.number_input(key="mit_epochs").set_value(FASHION_TRAIN_EPOCHS).run()
    check(at.button(key="mit_train_btn").click().run())
    job = at.session_state[JOB]
    job.cancel()
    assert job.requests[0].init_from is None and job.requests[0].params.lr == TrainParams.lr
    assert wait_for_job(at).status == "cancelled"
    at.radio(key="w_mit_sample").set_value("digits").run()
    assert [c.key for c in at.checkbox] == ["mit_monitor"]  # digits: no warm start (1,257 photos beat old)


def test_a_model_worse_than_old_is_shown_with_the_reason(_own_cache):
    """A run whose model makes more errors than the old one gets a warning that says why (few photos, from scratch);
    a run that does not, gets none (the control)."""
    import shutil

    from graceful_core.training.update import TrainParams

    models = _own_cache / "models"
    models.mkdir(parents=True)
    files = {n: models / f"{n}.pt" for n in ("fd", "plain")}
    for f in files.values():
        shutil.copy(OLD, f)
    train = ROOT / "sample_data" / "digits" / "train"

    def record(name, method, new_err, base_id=None):
        r = {
            "spec_id": f"trained:{name}",
            "model": str(files[name]),
            "old": str(OLD),
            "train_data": str(train),
            "eval_data": str(TEST_DATA),
            "params": {**TrainParams(method=method, epochs=2).__dict__},
            "seconds": 1.0,
            "created": "2026-01-01 00:00:00",
            "history": [],
            "init_from": None,
            "metrics": {
                "negative_flip_rate": 0.05,
                "new_error_rate": new_err,
                "old_error_rate": 0.1,
                "backward_trust_compatibility": 0.9,
                "n_negative_flips": 27,
                "n_positive_flips": 3,
                "hit1_new_old": None,
                "hit1_old_old": None,
                "hit1_new_new": None,
                "compatible": None,
            },
        }
        if base_id:
            r["baseline_id"] = base_id
        return r

    index = _own_cache / "mitigation-runs.json"
    index.write_text(
        json.dumps([record("plain", "plain", 0.12), record("fd", "focal-distillation", 0.15, "trained:plain")])
    )
    at = open_page()
    warnings = [w.value for w in at.warning if "more errors than the old model" in w.value]
    assert len(warnings) == 1, [w.value for w in at.warning]
    assert "from scratch" in warnings[0] and "15.00 %" in warnings[0] and "10.00 %" in warnings[0]
    assert "1,257 photos" in warnings[0]
    index.write_text(
        json.dumps([record("plain", "plain", 0.08), record("fd", "focal-distillation", 0.09, "trained:plain")])
    )
    at = open_page()
    assert not [w.value for w in at.warning if "more errors than the old model" in w.value]
