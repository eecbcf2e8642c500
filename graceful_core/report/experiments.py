"""Headlines of the committed mitigation experiments (``results/*.json``), for the faces.

The experiment script (``scripts/experiment_mitigation.py``) writes one JSON per run with, per
method, the mean ± std over seeds of every metric and the paired differences to plain
(``vs_plain``). :func:`mitigation_headline` turns one file into the few numbers a page or a
README states first: plain's NFR and error, the range of NFR changes and error costs of the
distillation family, whether any setting kept "equal error" on validation, and BCT's
cross-test against the old model's self-test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from graceful_core.errors import InputError

__all__ = ["MitigationHeadline", "mitigation_headline"]


@dataclass(frozen=True)
class MitigationHeadline:
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
            f"{self.plain_error_rate * 100:.2f} % ({self.seeds} seeds, {self.n_test:,} test images).",
        ]
        if n:
            out.append(f"Distillation (plain and focal, every λ) changes NFR by {lo * 100:+.1f} to {hi * 100:+.1f} "
                       f"points (paired t p < 0.05 in {sig} of {n} settings) and the error rate by "
                       f"{elo * 100:+.1f} to {ehi * 100:+.1f} points.")
        if self.equal_error_found is not None:
            out.append("A setting kept the error rate of plain training on validation."
                       if self.equal_error_found else
                       "No setting kept the error rate of plain training on validation: lower NFR at equal error "
                       "(Yan et al. 2021) is not reproduced here.")
        if self.bct_cross_test is not None and self.old_self_test is not None:
            verdict = "compatible" if self.bct_cross_test > self.old_self_test else "not compatible"
            plain = f" (plain: {self.plain_cross_test * 100:.1f} %)" if self.plain_cross_test is not None else ""
            out.append(f"BCT: cross-test Hit@1 {self.bct_cross_test * 100:.1f} %{plain} vs the old model's "
                       f"self-test {self.old_self_test * 100:.1f} %: {verdict}.")
        return out


def mitigation_headline(path: str | os.PathLike) -> MitigationHeadline:
    """Read ``results/<name>.json`` of ``scripts/experiment_mitigation.py`` into its headline.

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
    >>> h = mitigation_headline(f)
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
    return MitigationHeadline(
        seeds=int(run.get("config", {}).get("seeds", 0)),
        n_test=int(run.get("n_samples", 0)),
        plain_error_rate=float(plain["error_rate"]["mean"]),
        plain_negative_flip_rate=float(plain["negative_flip_rate"]["mean"]),
        distill_nfr_change=(min(nfr), max(nfr)) if nfr else (0.0, 0.0),
        distill_error_change=(min(err), max(err)) if err else (0.0, 0.0),
        distill_significant=(sig, len(distill)),
        equal_error_found=(None if not run.get("selection") else
                           any((v or {}).get("chosen") is not None for v in run["selection"].values())),
        bct_cross_test=None if bct is None else float(bct["cross_test_hit1"]["mean"]),
        old_self_test=float(sum(old_self) / len(old_self)) if old_self else None,
        plain_cross_test=float(plain["cross_test_hit1"]["mean"]) if "cross_test_hit1" in plain else None,
    )
