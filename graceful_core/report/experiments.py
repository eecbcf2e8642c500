"""Headlines of the committed remedy experiment (``results/mitigation-fashion.json``), for the faces.

The experiment (``scripts/experiment_field.py``) measures, on the Fashion sample's own update and
several seeds, what each regression remedy buys and costs: the setting of each remedy is chosen
on a validation split, and its test numbers are compared, image by image and seed by seed, with
its baseline (the plain new model, or for weight interpolation the fine-tuned old model). This
module turns that JSON into the few numbers and one sentence per remedy that a page, the README
and the write-up state; the write-up and the Mitigate page both word remedies through
:func:`remedy_sentence`, so they cannot disagree.

The earlier distillation experiments (``scripts/experiment_mitigation.py``: digits, and 2,000 Fashion
photos) have their own format and headline (:func:`distillation_headline`); :func:`experiment_sentences`
reads either.

A remedy "gives fewer negative flips" when the exact McNemar test on the images broken by only one
of the two models (pooled over seeds) has p < 0.05 in its favour, and "costs error" when the same
test on errors has p < 0.05 against it (McNemar, Psychometrika 1947; :mod:`scipy.stats` in the
script).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from graceful_core.errors import InputError
from graceful_core.vocabulary import count

__all__ = [
    "RemedyOutcome",
    "MitigationHeadline",
    "mitigation_headline",
    "remedy_sentence",
    "SIGNIFICANCE",
    "DistillationHeadline",
    "distillation_headline",
    "experiment_sentences",
]

#: The level of the per-image McNemar tests behind the words "fewer", "more", "costs".
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class RemedyOutcome:
    """One remedy's chosen setting on the test images, against its baseline (rates as fractions)."""

    name: str
    setting: str | None
    baseline: str
    models_at_inference: str
    error_rate: float | None
    negative_flip_rate: float | None
    #: Mean per-seed change against the baseline and its 95 % t interval (fractions; negative = fewer).
    error_change: tuple[float, float, float] | None
    nfr_change: tuple[float, float, float] | None
    #: Mean per-seed relative NFR change (−0.27 = 27 % fewer negative flips), None when a baseline had none.
    relative_nfr_change: float | None
    #: Images broken (or wrong) by only the baseline / only the remedy, pooled over seeds, and the McNemar p.
    flips_only: tuple[int, int] | None
    flips_p: float | None
    errors_only: tuple[int, int] | None
    errors_p: float | None

    @property
    def fewer_flips(self) -> bool:
        return _shift(self.flips_only, self.flips_p) < 0

    @property
    def more_flips(self) -> bool:
        return _shift(self.flips_only, self.flips_p) > 0

    @property
    def costs_error(self) -> bool:
        return _shift(self.errors_only, self.errors_p) > 0

    @property
    def lowers_error(self) -> bool:
        return _shift(self.errors_only, self.errors_p) < 0


def _shift(only: tuple[int, int] | None, p: float | None) -> int:
    """−1 / +1 when the remedy's side of a McNemar test (images only the baseline / only the remedy gets wrong)
    is significantly smaller / larger at :data:`SIGNIFICANCE`, else 0."""
    if only is None or p is None or p >= SIGNIFICANCE:
        return 0
    return (only[1] > only[0]) - (only[1] < only[0])


def remedy_sentence(r: RemedyOutcome, equal_error: float) -> str:
    """One plain sentence: fewer negative flips at equal error, or what happened instead.

    >>> r = RemedyOutcome("mixing", "w_new = 0.6", "plain", "2", 0.08, 0.012, (0.001, -0.001, 0.003),
    ...                   (-0.006, -0.008, -0.004), -0.33, (300, 120), 1e-12, (200, 230), 0.2)
    >>> remedy_sentence(r, 0.005)
    '**mixing** (w_new = 0.6, chosen on validation; 2 models at inference): fewer negative flips (-33 % NFR, error +0.10 points, not significantly different) against plain on the test images.'
    """
    if r.setting is None:
        return (
            f"**{r.name}**: no setting kept the validation error within the baseline's + "
            f"{equal_error * 100:g} points; nothing to recommend."
        )
    rel = f"{r.relative_nfr_change * 100:+.0f} % NFR, " if r.relative_nfr_change is not None else ""
    d_er = (r.error_change or (0.0, 0.0, 0.0))[0] * 100
    if r.fewer_flips and not r.costs_error:
        head = (
            f"fewer negative flips ({rel}error {d_er:+.2f} points, "
            f"{'lower' if r.lowers_error else 'not significantly different'})"
        )
    elif r.fewer_flips:
        head = f"fewer negative flips ({rel}error {d_er:+.2f} points) but significantly more errors"
    elif r.more_flips:
        head = f"**more** negative flips ({rel}error {d_er:+.2f} points)"
    else:
        head = f"no significant change in negative flips ({rel}error {d_er:+.2f} points)"
    models = f"{r.models_at_inference} model{'' if r.models_at_inference == '1' else 's'}"
    return (
        f"**{r.name}** ({r.setting}, chosen on validation; {models} at inference): {head} against {r.baseline} "
        "on the test images."
    )


def _setting_words(param: str, setting: Any) -> str:
    if isinstance(setting, list):
        return f"{param} = {', '.join(f'{v:g}' for v in setting)}"
    return f"{param} = {setting:g}"


def outcome_of(name: str, fam: dict) -> RemedyOutcome:
    """A :class:`RemedyOutcome` from one family of the experiment's JSON (``families[name]``)."""
    chosen = fam["chosen"]
    if chosen is None:
        return RemedyOutcome(
            name,
            None,
            fam["baseline"],
            fam["models_at_inference"],
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    c = fam["candidates"][chosen]
    v = fam["vs_baseline"]
    pi = v["per_image"]

    def trio(d: dict) -> tuple[float, float, float]:
        return float(d["mean"]), float(d["ci95"][0]), float(d["ci95"][1])

    rel = v.get("relative_nfr_change")
    return RemedyOutcome(
        name=name,
        setting=_setting_words(fam["param"], c["setting"]),
        baseline=fam["baseline"],
        models_at_inference=fam["models_at_inference"],
        error_rate=float(c["mean"]["test"]["error_rate"]),
        negative_flip_rate=float(c["mean"]["test"]["negative_flip_rate"]),
        error_change=trio(v["error_rate"]),
        nfr_change=trio(v["negative_flip_rate"]),
        relative_nfr_change=None if rel is None else float(rel["mean"]),
        flips_only=(int(pi["flips_only_baseline"]), int(pi["flips_only_method"])),
        flips_p=float(pi["flips_p"]),
        errors_only=(int(pi["errors_only_baseline"]), int(pi["errors_only_method"])),
        errors_p=float(pi["errors_p"]),
    )


@dataclass(frozen=True)
class MitigationHeadline:
    """What the remedy experiment found: the plain update's numbers and one outcome per remedy."""

    seeds: int
    n_test: int
    plain_error_rate: float
    plain_negative_flip_rate: float
    equal_error: float
    remedies: tuple[RemedyOutcome, ...]

    def sentences(self) -> list[str]:
        """The headline in plain words: the plain update, then one sentence per remedy."""
        return [
            f"Plain retraining: NFR {self.plain_negative_flip_rate * 100:.2f} %, error rate "
            f"{self.plain_error_rate * 100:.2f} % (mean of {self.seeds} seeds, {count(self.n_test)} test images)."
        ] + [remedy_sentence(r, self.equal_error) for r in self.remedies]


def mitigation_headline(path: str | os.PathLike) -> MitigationHeadline:
    """Read ``results/mitigation-fashion.json`` (``scripts/experiment_field.py``) into its headline.

    Raises
    ------
    InputError
        The file is missing, not JSON, or lacks the baselines and families of the experiment.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            run = json.load(fh)
        plain = run["baselines"]["plain"]
        remedies = tuple(outcome_of(name, fam) for name, fam in run["families"].items())
        seeds = len(plain["per_seed"]["test"])
        n_test = int(run["config"]["n_test"])
        return MitigationHeadline(
            seeds=seeds,
            n_test=n_test,
            plain_error_rate=float(plain["mean"]["test"]["error_rate"]),
            plain_negative_flip_rate=float(plain["mean"]["test"]["negative_flip_rate"]),
            equal_error=float(run["config"]["equal_error"]),
            remedies=remedies,
        )
    except FileNotFoundError:
        raise InputError(os.fspath(path), "no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError, IndexError, ValueError) as e:
        raise InputError(os.fspath(path), f"not a mitigation experiment's results ({e!r})") from None


def experiment_sentences(path: str | os.PathLike) -> list[str]:
    """The headline sentences of either experiment format (remedies: ``families``; distillation: ``summary``).

    Raises
    ------
    InputError
        As :func:`mitigation_headline` / :func:`distillation_headline`.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            is_remedies = "families" in json.load(fh)
    except FileNotFoundError:
        raise InputError(os.fspath(path), "no such file") from None
    except (json.JSONDecodeError, TypeError) as e:
        raise InputError(os.fspath(path), f"not a mitigation experiment's results ({e!r})") from None
    return (mitigation_headline(path) if is_remedies else distillation_headline(path)).sentences()


@dataclass(frozen=True)
class DistillationHeadline:
    """What a mitigation experiment found, in numbers (rates as fractions, differences in points / 100)."""

    seeds: int
    n_test: int
    plain_error_rate: float
    plain_negative_flip_rate: float
    #: Smallest and largest mean NFR change vs plain over the distillation settings (negative = fewer flips).
    distill_nfr_change: tuple[float, float]
    #: Smallest and largest mean error-rate change vs plain over the same settings.
    distill_error_change: tuple[float, float]
    #: Settings whose paired t test on NFR vs plain has p < 0.05, of all distillation settings.
    distill_significant: tuple[int, int]
    #: True when some setting's validation error stayed within the equal-error margin of plain's; None when the
    #: run chose nothing on validation.
    equal_error_found: bool | None
    bct_cross_test: float | None
    old_self_test: float | None
    plain_cross_test: float | None

    def sentences(self) -> list[str]:
        """The headline in plain words (percent with 2 decimals, points with 1)."""
        lo, hi = self.distill_nfr_change
        elo, ehi = self.distill_error_change
        sig, n = self.distill_significant
        out = [
            f"Plain retraining: NFR {self.plain_negative_flip_rate * 100:.2f} %, error rate "
            f"{self.plain_error_rate * 100:.2f} % ({self.seeds} seeds, {count(self.n_test)} test images).",
        ]
        if n:
            out.append(
                f"Distillation (plain and focal, every λ) changes NFR by {lo * 100:+.1f} to {hi * 100:+.1f} "
                f"points (paired t p < 0.05 in {sig} of {n} settings) and the error rate by "
                f"{elo * 100:+.1f} to {ehi * 100:+.1f} points."
            )
        if self.equal_error_found is not None:
            out.append(
                "A setting kept the error rate of plain training on validation."
                if self.equal_error_found
                else "No setting kept the error rate of plain training on validation: lower NFR at equal error "
                "(Yan et al. 2021) is not reproduced here."
            )
        if self.bct_cross_test is not None and self.old_self_test is not None:
            verdict = "compatible" if self.bct_cross_test > self.old_self_test else "not compatible"
            plain = f" (plain: {self.plain_cross_test * 100:.1f} %)" if self.plain_cross_test is not None else ""
            out.append(
                f"BCT: cross-test Hit@1 {self.bct_cross_test * 100:.1f} %{plain} vs the old model's "
                f"self-test {self.old_self_test * 100:.1f} %: {verdict}."
            )
        return out


def distillation_headline(path: str | os.PathLike) -> DistillationHeadline:
    """Read ``results/<name>.json`` of ``scripts/experiment_mitigation.py`` (the distillation and BCT experiments on
    digits and on 2,000 Fashion photos) into its headline.

    Raises
    ------
    InputError
        The file is missing, not JSON, or lacks the ``summary`` of a run with a ``plain`` method.

    Examples
    --------
    >>> import json, tempfile, os
    >>> row = lambda er, nfr, d_er, d_nfr, p: {"error_rate": {"mean": er}, "negative_flip_rate": {"mean": nfr},
    ...     "cross_test_hit1": {"mean": 0.1},
    ...     "vs_plain": {"error_rate": {"mean": d_er}, "negative_flip_rate": {"mean": d_nfr, "t_p": p}}}
    >>> run = {"config": {"seeds": 5}, "n_samples": 100, "old_self_test_hit1": [0.8, 0.8],
    ...        "summary": {"plain": {"error_rate": {"mean": 0.2}, "negative_flip_rate": {"mean": 0.03},
    ...                              "cross_test_hit1": {"mean": 0.1}},
    ...                    "distill λ=1": row(0.22, 0.02, 0.02, -0.01, 0.01)},
    ...        "selection": {"distill": {"chosen": None}}}
    >>> f = os.path.join(tempfile.mkdtemp(), "r.json"); _ = open(f, "w").write(json.dumps(run))
    >>> h = distillation_headline(f)
    >>> h.distill_nfr_change, h.distill_significant, h.equal_error_found
    ((-0.01, -0.01), (1, 1), False)
    """
    try:
        with open(path, encoding="utf-8") as fh:
            run = json.load(fh)
        summary = run["summary"]
        plain = summary["plain"]
    except FileNotFoundError:
        raise InputError(os.fspath(path), "no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(os.fspath(path), f"not a mitigation experiment's results ({e})") from None
    distill = {m: s for m, s in summary.items() if m != "plain" and not m.startswith("bct") and "vs_plain" in s}
    nfr = [s["vs_plain"]["negative_flip_rate"]["mean"] for s in distill.values()]
    err = [s["vs_plain"]["error_rate"]["mean"] for s in distill.values()]
    sig = sum(1 for s in distill.values() if (s["vs_plain"]["negative_flip_rate"].get("t_p") or 1.0) < 0.05)
    bct = next((s for m, s in summary.items() if m.startswith("bct")), None)
    old_self = run.get("old_self_test_hit1") or []
    return DistillationHeadline(
        seeds=int(run.get("config", {}).get("seeds", 0)),
        n_test=int(run.get("n_samples", 0)),
        plain_error_rate=float(plain["error_rate"]["mean"]),
        plain_negative_flip_rate=float(plain["negative_flip_rate"]["mean"]),
        distill_nfr_change=(min(nfr), max(nfr)) if nfr else (0.0, 0.0),
        distill_error_change=(min(err), max(err)) if err else (0.0, 0.0),
        distill_significant=(sig, len(distill)),
        equal_error_found=(
            None
            if not run.get("selection")
            else any((v or {}).get("chosen") is not None for v in run["selection"].values())
        ),
        bct_cross_test=None if bct is None else float(bct["cross_test_hit1"]["mean"]),
        old_self_test=float(sum(old_self) / len(old_self)) if old_self else None,
        plain_cross_test=float(plain["cross_test_hit1"]["mean"]) if "cross_test_hit1" in plain else None,
    )
