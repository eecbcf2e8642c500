"""Mitigate: train an update that regresses less (focal distillation) or stays compatible (BCT), and compare."""

from pathlib import Path
from typing import Literal

import streamlit as st

from graceful_core.errors import InputError
from graceful_core.io.samples import bundled_samples
from graceful_core.report.experiments import experiment_sentences
from graceful_core.report.figures import epoch_curves, tradeoff_figure
from graceful_core.training.update import WARM_START_LR, TrainParams
from graceful_core.vocabulary import METHOD_HELP, METRICS, TRAINING_METHODS, TRAINING_TITLE, points, yes_no
from graceful_ui.bundled_specs import sample_data_dir, spec_sample
from graceful_ui.spec_ids import resolve_spec
from graceful_ui.training import SWEEP_LAMBDAS, TrainingJob, TrainRequest, describe, load_runs, runs_for, sweep_requests
from graceful_ui.whatif_ui import whatif_section
from graceful_ui.widgets import open_comparison, page_comparison

ss = st.session_state
JOB = "_mitigate_job"
#: A run record's metric -> the vocabulary's metric (labels, help, format).
RUN_METRICS = {
    "negative_flip_rate": "negative_flip_rate",
    "new_error_rate": "new_error_rate",
    "old_error_rate": "old_error_rate",
    "backward_trust_compatibility": "backward_trust_compatibility",
    "n_negative_flips": "n_negative_flips",
    "hit1_new_old": "cross_test_hit_at_1",
}
DELTA_HELP = " Delta: trained − plain baseline."
#: Measured time of one training at the sample's default epochs (the update; its plain baseline takes as long),
#: on 2 CPU cores shared with other jobs (notes/fapp.md has the command). Fashion-MNIST's default is a warm start
#: of 2 epochs: the whole default run (update, baseline and both comparisons) took 105 s of CPU time
#: (notes/training.md).
TRAIN_TIME = {"digits": "about 10 s", "fashion": "under a minute of CPU time"}
#: Whether the per-epoch monitor is on by default: on Fashion-MNIST each epoch's pass over the 10,000 test photos
#: would take about as long as the training itself.
MONITOR_DEFAULT = {"digits": True, "fashion": False}

st.title("Mitigate")
whatif_section()
st.subheader(TRAINING_TITLE)
st.caption(
    "Train a new model against the old one and see what it changes: negative flips, error rate, backward "
    "trust and embedding compatibility, next to a plain retrained model with the same seed and epochs."
)

samples = [
    s
    for s in bundled_samples(sample_data_dir())
    if s.train_data.is_dir() and any(p.suffix == ".pt" for p in s.models())
]
if not samples:
    st.info("The bundled sample data (sample_data/) is missing: nothing to train on.")
    st.stop()
_current = spec_sample(page_comparison()[0])
if ss.get("mit_sample") not in [s.name for s in samples]:
    ss["mit_sample"] = _current.name if _current in samples else samples[0].name
sample = next(s for s in samples if s.name == ss["mit_sample"])
models = [p for p in sample.models() if p.suffix == ".pt"]  # training needs TorchScript
datasets = [sample.train_data, sample.test_folder]
#: The model a default update starts from (the bundled new model on Fashion-MNIST), or None: from scratch.
warm_model = next((p for p in models if p.stem == sample.warm_start), None) if sample.warm_start else None
DEFAULT_EPOCHS = sample.warm_start_epochs if warm_model is not None else sample.train_epochs


def _index(items: list[Path], name: str) -> int:
    names = [p.name for p in items]
    return names.index(name) if name in names else 0


def _short(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


job: TrainingJob | None = ss.get(JOB)
busy = job is not None and job.snapshot().running


def _on_sample() -> None:
    ss["mit_sample"] = ss["w_mit_sample"]
    for k in (
        "mit_old",
        "mit_train",
        "mit_eval",
        "mit_epochs",
        "mit_monitor",
        "mit_current",
        "mit_warm",
    ):  # they name the other sample's files
        ss.pop(k, None)


with st.container(border=True):
    titles = {s.name: s.title for s in samples}
    ss["w_mit_sample"] = sample.name
    st.radio(
        "Sample",
        list(titles),
        format_func=titles.get,
        key="w_mit_sample",
        on_change=_on_sample,
        horizontal=True,
        disabled=busy,
        help="The bundled sample to train on: its old model, its training images, its test images.",
    )
    if sample.training_note:
        st.caption(sample.training_note)
    c1, c2, c3 = st.columns(3)
    old = c1.selectbox(
        "Old (deployed) model",
        models,
        index=_index(models, f"{sample.old}.pt"),
        format_func=lambda p: p.name,
        key="mit_old",
        help="A bundled TorchScript model; BCT needs one that exports embed and head.",
    )
    train_data = c2.selectbox(
        "Training data",
        datasets,
        index=0,
        format_func=_short,
        key="mit_train",
        help=f"{sample.title}: the images the update is trained on.",
    )
    eval_data = c3.selectbox(
        "Evaluation data",
        datasets,
        index=1,
        format_func=_short,
        key="mit_eval",
        help="Held-out images the old model and both new models are compared on.",
    )
    warm = False
    if warm_model is not None:
        n_train = sum(1 for _ in Path(sample.train_data).glob("*/*.png"))
        warm = st.checkbox(
            f"Start from {warm_model.name} (warm start)",
            value=True,
            key="mit_warm",
            help=f"The update and its plain baseline start from {warm_model.name}'s weights (trained on the whole "
            f"training set) and are trained further on the {n_train:,} photos of "
            f"{_short(Path(sample.train_data))} at a tenth of the learning rate ({WARM_START_LR:g}). Untick to "
            f"train from scratch: {n_train:,} photos are too few for a model as good as the old one.",
        )
    method = st.radio(
        "Method", TRAINING_METHODS, index=2, key="mit_method", captions=[METHOD_HELP[m] for m in TRAINING_METHODS]
    )
    c4, c5, c6 = st.columns(3)
    lam, alpha, beta = 1.0, 1.0, 5.0
    temperature, margin, power, n_refs = (
        TrainParams.temperature,
        TrainParams.margin,
        TrainParams.p,
        TrainParams.n_references,
    )
    if method != "plain":
        lam = c4.slider(
            "λ (weight of the extra loss)",
            0.0,
            5.0,
            1.0,
            0.05,
            key="mit_lam",
            help=f"Yan et al. and Shen et al. use λ = 1. {sample.lambda_note} The λ sweep and the "
            "experiment below show the trade-off.",
        )
    if method == "focal-distillation":
        alpha = c5.number_input("α (weight on every image)", 0.0, 100.0, 1.0, 0.5, key="mit_alpha")
        beta = c6.number_input("β (extra weight where the old model is right)", 0.0, 100.0, 5.0, 0.5, key="mit_beta")
        temperature = c4.number_input(
            "T (temperature of the KL, times T²)",
            0.1,
            1000.0,
            TrainParams.temperature,
            1.0,
            key="mit_temperature",
            help="The PCT reference code uses T = 100 (close to matching logits).",
        )
    if method in ("ldi", "elodi"):
        margin = c5.number_input(
            "Margin (logit differences up to it are free)",
            0.0,
            100.0,
            TrainParams.margin,
            0.1,
            key="mit_margin",
            help="ELODI's reference code uses 0.5.",
        )
        power = c6.number_input(
            "p (power of the excess)", 0.5, 4.0, TrainParams.p, 0.5, key="mit_p", help="ELODI's reference code uses 2."
        )
    if method == "elodi":
        n_refs = c4.number_input(
            "Reference models (k)",
            3,
            10,
            TrainParams.n_references,
            1,
            key="mit_k",
            help="ELODI holds the new logits to the mean of k plain models of the same "
            "architecture trained first with seeds seed + 1 … seed + k (cached): k more "
            "trainings before the update.",
        )
    c7, c8, c9 = st.columns(3)
    epochs = c7.number_input(
        "Epochs",
        1,
        500,
        DEFAULT_EPOCHS,
        1,
        key="mit_epochs",
        help=f"{DEFAULT_EPOCHS} epochs train one {sample.title} model in "
        f"{TRAIN_TIME.get(sample.name, 'a minute or two')} on 2 CPU cores "
        "(the plain baseline as long again; longer on a busy machine).",
    )
    seed = c8.number_input(
        "Seed",
        0,
        2**31 - 1,
        0,
        1,
        key="mit_seed",
        help="Seeds initialisation and shuffling; the baseline uses the same seed (paired).",
    )
    c9.markdown("")  # aligns the checkbox with the number inputs' boxes
    monitor = c9.checkbox(
        "NFR and error after every epoch",
        value=MONITOR_DEFAULT.get(sample.name, True),
        key="mit_monitor",
        help="Measures each epoch's model against the old one on the evaluation data "
        "(graceful_core.FlipMonitor: one pass over those images per epoch) for the per-epoch "
        "chart. It does not change the trained weights. On a large evaluation set (Fashion-MNIST: "
        "10,000 photos) it about doubles the training time.",
    )
    b1, b2, _ = st.columns([1, 2, 2])
    train_clicked = b1.button("Train", type="primary", disabled=busy, key="mit_train_btn", width="stretch")
    sweep_clicked = b2.button(
        f"λ sweep ({', '.join(f'{v:g}' for v in SWEEP_LAMBDAS)})",
        key="mit_sweep_btn",
        disabled=busy or method == "plain",
        width="stretch",
        help="Train the chosen method once per λ, in sequence (plain has no λ).",
    )

params = TrainParams(
    method=method,
    arch=sample.train_arch,
    lam=float(lam),
    alpha=float(alpha),
    beta=float(beta),
    temperature=float(temperature),
    margin=float(margin),
    p=float(power),
    n_references=int(n_refs),
    epochs=int(epochs),
    seed=int(seed),
    lr=WARM_START_LR if warm else TrainParams.lr,
)
request = TrainRequest(
    old=str(old),
    train_data=str(train_data),
    eval_data=str(eval_data),
    params=params,
    monitor=bool(monitor),
    init_from=str(warm_model) if warm else None,
)
if train_data == eval_data:
    st.warning("Training and evaluation data are the same folder: the numbers below then measure memorisation.")
if (train_clicked or sweep_clicked) and not busy:
    reqs = sweep_requests(request) if sweep_clicked else [request]
    ss[JOB] = TrainingJob(reqs).start()
    ss["mit_current"] = None
    st.rerun()  # redraw with the buttons disabled and the progress bar


@st.fragment(run_every=1.0)
def live_progress() -> None:
    """The progress bar and Cancel button; when the job ends, rerun the page to show its results."""
    current: TrainingJob | None = ss.get(JOB)
    if current is None:
        return
    snap = current.snapshot()
    if not snap.running:
        st.rerun()
    st.progress(snap.fraction, text=snap.text)
    st.button(
        "Cancel",
        on_click=current.cancel,
        key="mit_cancel",
        disabled=current.cancel_event.is_set(),
        help="Stops before the next batch; nothing is written for the interrupted model.",
    )


if busy:
    live_progress()
elif job is not None:
    snap = job.snapshot()
    if snap.status == "failed":
        st.error(snap.message)
    elif snap.status == "cancelled":
        st.warning(snap.message)
    if snap.records and ss.get("mit_current") is None:
        ss["mit_current"] = snap.records[-1]["spec_id"]

# ------------------------------------------------------------------ results
runs = runs_for(load_runs(), str(old), str(eval_data))
by_id = {r["spec_id"]: r for r in runs}
current = by_id.get(ss.get("mit_current") or "")
if current is None and not busy:  # while training, show no half-finished run
    trained = [r for r in runs if r["params"]["method"] != "plain"]
    current = trained[-1] if trained else None


def _value(m: dict, key: str) -> str:
    """A run record's metric in the vocabulary's format."""
    return METRICS[RUN_METRICS[key]].format(m.get(key))


def _delta(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None else points(a - b)


if current is not None:
    p = TrainParams(**current["params"])
    if p.method == "plain":
        base = current
    else:
        base = by_id.get(current.get("baseline_id") or "", {"metrics": dict.fromkeys(current["metrics"])})
    st.subheader(f"Result: {describe(p)}")
    started = current.get("init_from")
    st.caption(
        f"Old model {Path(current['old']).name}, trained on {_short(Path(current['train_data']))}"
        f"{f' starting from {Path(started).name}' if started else ' from scratch'}, evaluated on "
        f"{_short(Path(current['eval_data']))} · trained in {current['seconds']:.1f} s "
        f"(0 s = reused from the cache) · file {Path(current['model']).name}"
    )
    m, b = current["metrics"], base["metrics"]
    worse = [
        name
        for name, r in ((describe(p), m), ("the plain baseline", b))
        if r.get("new_error_rate") is not None
        and r.get("old_error_rate") is not None
        and r["new_error_rate"] > r["old_error_rate"]
    ]
    if worse:
        n_photos = sum(1 for _ in Path(current["train_data"]).glob("*/*.png"))
        why = (
            f"both were trained on only {n_photos:,} photos of {_short(Path(current['train_data']))}"
            + (
                f", starting from {Path(started).name}"
                if started
                else " from scratch, while the old model learned from many more"
            )
            + ". A model trained on so few photos can lose to the old one whatever the method: "
            + (
                "tick the warm start above to refine the bundled new model instead, or train on more photos."
                if warm_model is not None and not started
                else "train on more photos or for more epochs."
            )
        )
        st.warning(
            f"{' and '.join(worse).capitalize()} make{'s' if len(worse) == 1 else ''} more errors than the old "
            f"model ({_value(m, 'new_error_rate')} and {_value(b, 'new_error_rate')} against "
            f"{_value(m, 'old_error_rate')}): {why}"
        )
    cards: tuple[tuple[str, Literal["normal", "inverse"]], ...] = (
        ("negative_flip_rate", "inverse"),
        ("new_error_rate", "inverse"),
        ("backward_trust_compatibility", "normal"),
        ("hit1_new_old", "normal"),
    )
    # two cards a row: four side by side truncate their numbers at 800 px with the sidebar open
    for col, (key, colour) in zip([*st.columns(2), *st.columns(2)], cards):
        metric = METRICS[RUN_METRICS[key]]
        with col.container(border=True):
            st.metric(
                metric.label,
                _value(m, key),
                delta=_delta(m.get(key), b.get(key)),
                delta_color=colour,
                help=metric.help + DELTA_HELP,
            )
            st.caption(f"plain baseline: {_value(b, key)}")
    st.markdown("#### Before / after")
    rows = (
        "negative_flip_rate",
        "n_negative_flips",
        "new_error_rate",
        "old_error_rate",
        "backward_trust_compatibility",
        "hit1_new_old",
    )
    self_test = METRICS["self_test_hit_at_1"]
    st.table(
        {
            "metric": [METRICS[RUN_METRICS[r]].label for r in rows]
            + [f"{self_test.label} (old→old)", "Compatible (BCT)"],
            "old → plain new (baseline)": [_value(b, r) for r in rows]
            + [self_test.format(b.get("hit1_old_old")), yes_no(b["compatible"])],
            f"old → {p.method} new": [_value(m, r) for r in rows]
            + [self_test.format(m.get("hit1_old_old")), yes_no(m["compatible"])],
        }
    )
    curves = [(describe(p), current.get("history") or [])]
    if base is not current and base.get("history"):
        curves.append(("plain (baseline)", base["history"]))
    curves = [(name, h) for name, h in curves if any(e.get("nfr") is not None for e in h)]
    st.markdown("#### Per epoch")
    if curves:
        st.plotly_chart(epoch_curves(curves), key="mit_epochs_chart")
        st.caption(
            f"Each epoch's model against {Path(current['old']).name} on "
            f"{_short(Path(current['eval_data']))}, measured by graceful_core.FlipMonitor after every epoch; "
            "the last point is the model above. For watching only: choosing the number of epochs by these "
            "curves would tune on the evaluation data (for that, monitor a validation split: "
            "`graceful train --monitor VAL`)."
        )
    else:
        st.caption(
            'No per-epoch numbers for this run: it was trained without them (tick "NFR and error after '
            'every epoch" and train a new run).'
        )
    model_path = Path(current["model"])
    if model_path.is_file():
        st.download_button(
            "Download the trained model (.pt)",
            model_path.read_bytes(),
            file_name=model_path.name,
            mime="application/octet-stream",
            key="mit_download",
            help="TorchScript with graceful.json: python -m graceful_core compare OLD THIS.pt --data ...",
        )


# ------------------------------------------------------------- trade-off plot
def open_run(spec_id: str) -> None:
    """Open ``old → trained model`` on the Overview page."""
    if resolve_spec(spec_id) is not None:
        open_comparison(spec_id, page="overview")


def on_plot() -> None:
    points = ss["mit_plot"].selection.points
    if points and points[0].get("customdata"):
        cd = points[0]["customdata"]
        open_run(cd[0] if isinstance(cd, list | tuple) else cd)


if runs:
    st.markdown("#### Trade-off: negative flips vs error")
    st.caption(
        f"One point per trained model against {Path(str(old)).name} on {_short(Path(str(eval_data)))} "
        "(kept in the cache folder across sessions). Click a point to open that comparison on the Overview page."
    )
    labels = {r["spec_id"]: describe(TrainParams(**r["params"])) for r in reversed(runs)}
    st.plotly_chart(
        tradeoff_figure(runs, TRAINING_METHODS, labels), key="mit_plot", on_select=on_plot, selection_mode="points"
    )
    o1, o2 = st.columns([4, 1])
    pick = o1.selectbox(
        "Run", list(labels), format_func=labels.__getitem__, key="mit_pick", label_visibility="collapsed"
    )
    o2.button("Open on Overview", on_click=open_run, args=(pick,), key="mit_open", width="stretch")

exp = sample.experiment
if exp is not None and exp.is_file():
    st.subheader(f"What the committed experiment on {sample.title} found, over several seeds")
    st.caption(
        "New models trained from scratch in the experiment's own setting, settings chosen on validation and "
        "reported on test (the write-up below states the protocol): not the form above, so its numbers are "
        "not the form's."
    )
    try:
        st.info("\n\n".join(experiment_sentences(exp)))
    except InputError as e:
        st.warning(f"{exp.name}: {e.message}")
    if exp.with_suffix(".png").is_file():
        st.image(
            str(exp.with_suffix(".png")),
            caption="NFR vs error of every setting (test photos, mean over seeds; "
            f"stars: chosen on validation), results/{exp.with_suffix('.png').name}",
        )
    with st.expander(f"The whole write-up (results/{exp.with_suffix('.md').name})"):
        text = exp.with_suffix(".md").read_text() if exp.with_suffix(".md").is_file() else ""
        st.markdown(text.replace(f"![NFR vs error]({exp.with_suffix('.png').name})", ""))
