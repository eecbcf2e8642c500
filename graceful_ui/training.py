"""Training updates in the background for the Mitigate page, and the index of past runs.

Free of Streamlit: the page keeps a :class:`TrainingJob` in ``st.session_state`` and
polls :meth:`TrainingJob.snapshot` to draw its progress bar; ``Cancel`` sets the job's
:class:`threading.Event`, which the trainer polls before every batch
(:class:`~graceful_core.training.trainer.TrainingCancelled`). Trained models go to the
content-addressed cache file of :func:`graceful_core.training.update.trained_model_path`,
written only when training finished, so a cancelled run leaves nothing behind.

Every finished run is recorded in ``<cache>/mitigation-runs.json`` (a small JSON list:
the model, its parameters, its metrics against the old model on the evaluation data
and, per epoch, the flip monitor's error rate and NFR on that data), so the trade-off
plot and the per-epoch curves survive restarts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from graceful_core.cache import atomic_write_bytes, cache_dir
from graceful_core.comparing.sources import compare_sources
from graceful_core.errors import InputError
from graceful_core.jsonable import json_clean
from graceful_core.results.comparison import Comparison
from graceful_core.training.trainer import TrainingCancelled
from graceful_core.training.update import BATCH_SIZE, WAITING_STAGE, TrainedUpdate, TrainParams, train_update_cached
from graceful_core.vocabulary import count
from graceful_ui.trained_specs import trained_spec

log = logging.getLogger("graceful_ui")

RUNS_FILE = "mitigation-runs.json"
#: The index keeps at most this many runs (the oldest are dropped).
MAX_RUNS = 200
#: λ values of the sweep button.
SWEEP_LAMBDAS = (0.1, 0.25, 0.5, 1.0, 2.0)
#: Metric keys of a run record (``None`` where undefined, ``docs/metrics.md``).
METRIC_KEYS = (
    "negative_flip_rate",
    "new_error_rate",
    "old_error_rate",
    "backward_trust_compatibility",
    "n_negative_flips",
    "n_positive_flips",
    "hit1_new_old",
    "hit1_old_old",
    "hit1_new_new",
    "compatible",
)
#: Keys of a run record's per-epoch ``history`` entries (the trainer's and the flip monitor's numbers of
#: :func:`graceful_core.training.update.train_update`; ``None`` where undefined or not measured).
HISTORY_KEYS = ("epoch", "loss", "train_accuracy", "error_rate", "nfr", "pfr", "btc", "n_negative_flips", "cross_top1")

_INDEX_LOCK = threading.Lock()


@dataclass(frozen=True)
class TrainRequest:
    """One update to train and evaluate: old model, training and evaluation data, parameters.

    With ``monitor`` a :class:`graceful_core.FlipMonitor` of the old model on the
    evaluation data measures each epoch's model (one pass over the evaluation data per
    epoch); the run record keeps that history (:data:`HISTORY_KEYS`).
    """

    old: str
    train_data: str
    eval_data: str
    params: TrainParams
    monitor: bool = True
    init_from: str | None = None
    """A model file of ``params.arch`` the update and its baseline start from (a warm start), or None."""


def baseline_params(params: TrainParams) -> TrainParams:
    """The paired plain baseline of ``params``: cross-entropy only, same architecture, epochs, seed and learning rate."""
    return TrainParams(method="plain", arch=params.arch, epochs=params.epochs, seed=params.seed, lr=params.lr)


def sweep_requests(base: TrainRequest, lambdas: tuple[float, ...] = SWEEP_LAMBDAS) -> list[TrainRequest]:
    """``base`` once per λ in ``lambdas`` (order kept)."""
    return [replace(base, params=replace(base.params, lam=float(lam))) for lam in lambdas]


def run_metrics(comp: Comparison) -> dict:
    """The numbers of a run: NFR, error rates, BTC and the cross-test Hit@1 (NaN becomes None).

    ``hit1_new_old`` is M(new, old) on top-1 (new queries against the old gallery, Shen
    et al., CVPR 2020) and ``hit1_old_old`` the old self-test; None without a cross-test.
    """
    s = comp.summary
    out = {
        k: json_clean(getattr(s, k))
        for k in ("negative_flip_rate", "new_error_rate", "old_error_rate", "backward_trust_compatibility")
    }
    out["n_negative_flips"], out["n_positive_flips"] = s.n_negative_flips, s.n_positive_flips
    top1 = comp.compatibility.scores["top1"] if comp.compatibility is not None else {}
    out["hit1_new_old"] = json_clean(top1.get("new_old"))
    out["hit1_old_old"] = json_clean(top1.get("old_old"))
    out["hit1_new_new"] = json_clean(top1.get("new_new"))
    out["compatible"] = bool(comp.compatibility.compatible) if comp.compatibility is not None else None
    return out


def clean_history(history: list[dict]) -> list[dict]:
    """The per-epoch entries of a training as JSON-safe records of :data:`HISTORY_KEYS` (NaN becomes None)."""
    out = []
    for h in history:
        row = {k: json_clean(h.get(k)) for k in HISTORY_KEYS}
        row["epoch"] = int(h["epoch"])
        if row["n_negative_flips"] is not None:
            row["n_negative_flips"] = int(row["n_negative_flips"])
        out.append(row)
    return out


# ------------------------------------------------------------------ run index
def runs_path(root: Path | None = None) -> Path:
    """The run index file: ``<cache>/mitigation-runs.json``."""
    return (root or cache_dir()) / RUNS_FILE


def load_runs(root: Path | None = None) -> list[dict]:
    """Every recorded run whose model file still exists, oldest first (a broken index reads as empty)."""
    path = runs_path(root)
    try:
        runs = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(runs, list):
        return []
    return [r for r in runs if _valid_run(r)]


def _valid_run(r: object) -> bool:
    """A record the page can draw: its model exists and its parameters and metrics are readable."""
    if not (isinstance(r, dict) and isinstance(r.get("model"), str) and Path(r["model"]).is_file()):
        return False
    if not all(isinstance(r.get(k), str) for k in ("spec_id", "eval_data", "old")):
        return False
    if not isinstance(r.get("metrics"), dict) or not isinstance(r.get("params"), dict):
        return False
    try:
        TrainParams(**r["params"]).validate()
    except (TypeError, ValueError):
        return False
    return True


def record_run(record: dict, root: Path | None = None) -> None:
    """Add ``record`` to the index (replacing an earlier record of the same model and evaluation data)."""
    with _INDEX_LOCK:
        runs = [
            r
            for r in load_runs(root)
            if (r.get("spec_id"), r.get("eval_data")) != (record["spec_id"], record["eval_data"])
        ]
        runs.append(record)
        atomic_write_bytes(runs_path(root), json.dumps(runs[-MAX_RUNS:], indent=1, allow_nan=False).encode())


def runs_for(runs: list[dict], old: str, eval_data: str) -> list[dict]:
    """The runs that compare against ``old`` on ``eval_data``."""
    return [r for r in runs if r.get("old") == old and r.get("eval_data") == eval_data]


# ----------------------------------------------------------------- the job
@dataclass(frozen=True)
class JobProgress:
    """What the progress bar shows: a copy of a job's state at one moment."""

    status: str  # "running", "done", "cancelled", "failed"
    message: str
    fraction: float
    text: str
    records: tuple[dict, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class _State:
    status: str = "running"
    message: str = ""
    task: int = 0
    n_tasks: int = 1
    what: str = ""
    stage: str = "starting"
    epoch: int = 0
    epochs: int = 1
    images: int = 0
    n_images: int = 0
    polls: int = 0
    records: list[dict] = field(default_factory=list)


class TrainingJob:
    """Train and evaluate a list of :class:`TrainRequest` in a background thread.

    For each request the job trains the requested update and its paired plain baseline
    (:func:`baseline_params`; reused from the cache when it exists), compares both with
    the old model on the evaluation data
    (:func:`graceful_core.comparing.sources.compare_sources`) and records the run
    (:func:`record_run`). :meth:`cancel` stops it before the next batch; no model file
    is written for the interrupted training.
    """

    def __init__(self, requests: list[TrainRequest], root: Path | None = None) -> None:
        if not requests:
            raise ValueError("a training job needs at least one request")
        self.requests = list(requests)
        self.root = root
        self.cancel_event = threading.Event()
        self._lock = threading.Lock()
        self._state = _State(n_tasks=sum(1 if r.params.method == "plain" else 2 for r in self.requests))
        self.started = time.time()
        self.thread = threading.Thread(target=self._run, name="graceful-train", daemon=True)

    # -- control
    def start(self) -> TrainingJob:
        self.thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop (the trainer checks before every batch)."""
        self.cancel_event.set()

    def snapshot(self) -> JobProgress:
        """The current state, for drawing (thread-safe)."""
        with self._lock:
            st = replace(self._state, records=list(self._state.records))
        if st.stage == "training":
            within = (st.epoch + min(1.0, st.images / st.n_images if st.n_images else 0.0)) / max(1, st.epochs)
            detail = (
                f"epoch {min(st.epoch + 1, st.epochs)} of {st.epochs}, {count(st.images)} / {count(st.n_images)} images"
            )
        elif st.stage == "preparing images":
            within, detail = 0.0, f"preparing {count(st.n_images)} images"
        elif st.stage == WAITING_STAGE:
            within, detail = 0.0, "queued: another session is training, this one starts when it ends"
        else:
            within, detail = (1.0 if st.stage == "comparing" else 0.0), st.stage
        fraction = min(1.0, (st.task + within) / st.n_tasks)
        text = f"Training {min(st.task + 1, st.n_tasks)} of {count(st.n_tasks)}: {st.what} · {detail}"
        if self.cancel_event.is_set() and st.status == "running":
            text = "Cancelling... " + text
        return JobProgress(st.status, st.message, fraction, text, tuple(st.records))

    # -- worker
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    def _progress(self, stage: str, done: int, total: int) -> None:
        if stage == "preparing images":
            self._set(stage=stage, n_images=total)
        elif stage == WAITING_STAGE:  # another session's training runs first
            self._set(stage=stage)
        else:  # "training (epochs)": an epoch finished
            self._set(stage="training", epoch=done, epochs=total, images=0, polls=0)

    def _should_stop(self) -> bool:
        """Polled by the trainer before every batch: count images and check for Cancel."""
        with self._lock:
            s = self._state
            s.images = min(s.polls * BATCH_SIZE, s.n_images)
            s.polls += 1
        return self.cancel_event.is_set()

    def _train(self, req: TrainRequest, params: TrainParams, label: str):
        self._set(what=label, stage="preparing images", epoch=0, epochs=params.epochs, images=0, polls=0)
        return train_update_cached(
            req.old,
            req.train_data,
            params,
            progress=self._progress,
            should_stop=self._should_stop,
            monitor=req.eval_data if req.monitor else None,
            init_from=req.init_from,
        )

    def _evaluate(self, req: TrainRequest, done: TrainedUpdate, params: TrainParams) -> dict:
        self._set(stage="comparing")
        spec = trained_spec(done.path, req.old, req.eval_data)
        comp = compare_sources(req.old, done.path, req.eval_data)
        if not isinstance(comp, Comparison):  # a run's numbers are flips and errors: they need true labels
            raise InputError(req.eval_data, "has no labels: a trained model is measured on labelled images")
        history = clean_history(done.history)
        if not history:  # a model reused from the cache: keep the history of its earlier run, if any
            earlier = [r for r in load_runs(self.root) if (r["spec_id"], r["eval_data"]) == (spec.id, req.eval_data)]
            history = (earlier[-1].get("history") or []) if earlier else []
        record = {
            "spec_id": spec.id,
            "model": str(done.path),
            "old": req.old,
            "train_data": req.train_data,
            "eval_data": req.eval_data,
            "params": asdict(params),
            "seconds": round(done.seconds, 2),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "metrics": run_metrics(comp),
            "history": history,
            "init_from": req.init_from,
        }
        record_run(record, self.root)
        return record

    def _run(self) -> None:
        try:
            task = 0
            for req in self.requests:
                plain = baseline_params(req.params)
                start = f" from {Path(req.init_from).name}" if req.init_from else ""
                pairs = [(req.params, describe(req.params) + start)]
                if req.params.method != "plain":
                    pairs.append((plain, describe(plain) + start + " (baseline)"))
                results = []
                for params, label in pairs:
                    if self.cancel_event.is_set():
                        raise TrainingCancelled("cancelled")
                    self._set(task=task)
                    task += 1
                    done = self._train(req, params, label)
                    results.append(self._evaluate(req, done, params))
                run = results[0]
                if len(results) > 1:  # the paired plain baseline, so the page can show before/after
                    run["baseline_id"] = results[1]["spec_id"]
                    record_run(run, self.root)
                with self._lock:
                    self._state.records.append(run)
            self._set(status="done", task=self._state.n_tasks, stage="done")
        except TrainingCancelled:
            self._set(status="cancelled", message="Training cancelled: no model file was written for it.")
        except InputError as e:
            self._set(status="failed", message=e.message)
        except Exception as e:  # a bug on odd input: say so on the page instead of dying silently
            log.exception("training job failed")
            self._set(status="failed", message=f"training failed ({type(e).__name__}: {e})")


def describe(params: TrainParams) -> str:
    """A short human name of an update's parameters, e.g. ``focal-distillation λ 0.5 (α 1, β 5)``."""
    run = f"{params.epochs} epochs, seed {params.seed}" + (f", lr {params.lr:g}" if params.lr != TrainParams.lr else "")
    if params.method == "plain":
        return f"plain ({run})"
    extra = ""
    if params.method == "focal-distillation":
        extra = f", α {params.alpha:g}, β {params.beta:g}" + (
            f", T {params.temperature:g}" if params.temperature != TrainParams.temperature else ""
        )
    elif params.method in ("ldi", "elodi"):
        extra = f", margin {params.margin:g}, p {params.p:g}" + (
            f", k {count(params.n_references)}" if params.method == "elodi" else ""
        )
    return f"{params.method} λ {params.lam:g}{extra} ({run})"
