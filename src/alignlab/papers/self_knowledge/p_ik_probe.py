"""The P(IK) probe: a logistic regression on a prompt's last hidden state, trained on the soft target of
Kadavath et al. 2022 App. A.6 (a question with fraction f of its answers right counts as "knows" with weight
f and "does not know" with weight 1 - f), its L2 strength chosen by 5-fold cross-validation (weighted log
loss) with each question's two rows in the same fold; and how the questions are split to train and test it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from alignlab.errors import AlignlabError
from alignlab.metrics import calibration as cal
from alignlab.metrics.bootstrap import bootstrap_estimate

PROBE_FORMAT = "alignlab-p-ik-probe/1"
CS = tuple(float(c) for c in np.logspace(-4, 2, 13))  # the L2 strengths (1/C) cross-validation chooses from


def split_task(rows: list[dict], task: str, share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """One task's questions in a seeded order: the first `share` train, the rest are held out."""
    mine = sorted(
        (s for s in rows if s["task"] == task),
        key=lambda s: hashlib.sha256(f"{seed}|{s['id']}|p-ik split".encode()).digest(),
    )
    cut = int(round(share * len(mine)))
    return mine[:cut], mine[cut:]


def split(rows: list[dict], tasks, share: float, seed: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """The train rows of every task in `tasks`, and each one's held-out rows."""
    train, held_out = [], {}
    for task in tasks:
        fit, rest = split_task(rows, task, share, seed)
        train += fit
        held_out[task] = rest
    return train, held_out


@dataclass(frozen=True)
class Probe:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    c: float

    @classmethod
    def fit(cls, rows: list[dict], c: float | None = None) -> Probe:
        """Fitted on `rows`; its penalty `c` chosen by grouped cross-validation unless given."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.model_selection import GroupKFold

        x = np.array([s["features"] for s in rows], dtype=float)
        f = np.array([s["fraction_right"] for s in rows], dtype=float)
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        # each question twice: "knows" with weight f, "does not" with weight 1 - f (the soft target)
        z2, y2, w2 = np.vstack([z, z]), np.r_[np.ones(len(z)), np.zeros(len(z))], np.r_[f, 1 - f]
        w2 = w2 + 1e-9  # both labels present even when every question has the same outcome
        groups = np.r_[np.arange(len(z)), np.arange(len(z))]

        def model(c):
            return LogisticRegression(C=c, max_iter=2000)

        folds = min(5, len(z))
        if c is None and folds < 2:
            c = 1e-2  # too few questions to cross-validate: a strong penalty
        if c is None:
            losses = {}
            for candidate in CS:
                total = 0.0
                for train, test in GroupKFold(folds).split(z2, y2, groups):
                    fitted = model(candidate).fit(z2[train], y2[train], sample_weight=w2[train])
                    p = fitted.predict_proba(z2[test])[:, 1]
                    total += log_loss(y2[test], p, sample_weight=w2[test], labels=[0, 1]) * w2[test].sum()
                losses[candidate] = total
            c = min(CS, key=lambda candidate: (losses[candidate], candidate))  # ties: the stronger penalty
        fitted = model(c).fit(z2, y2, sample_weight=w2)
        return cls(mean, scale, fitted.coef_[0].copy(), float(fitted.intercept_[0]), float(c))

    def predict(self, features) -> np.ndarray:
        z = (np.asarray(features, dtype=float) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def to_json(self, **about) -> dict:
        return {
            "format": PROBE_FORMAT,
            **about,
            "C": self.c,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> Probe:
        try:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            if found != PROBE_FORMAT:
                raise ValueError(f"format is {found!r}, not {PROBE_FORMAT!r}")
            mean, scale, coef = (np.array(data[k], dtype=float) for k in ("mean", "scale", "coef"))
            if not (mean.shape == scale.shape == coef.shape and mean.ndim == 1):
                raise ValueError("mean, scale and coef differ in length")
            intercept, c = float(data["intercept"]), float(data["C"])
            # a hand-edited probe: every number finite, each scale (a divisor) and C above zero
            for key, values in (("mean", mean), ("scale", scale), ("coef", coef), ("intercept", intercept)):
                if not np.all(np.isfinite(values)):
                    raise ValueError(f"{key} holds a value that is not a finite number")
            if np.any(scale <= 0) or not c > 0:
                raise ValueError(f"{'scale' if np.any(scale <= 0) else 'C'} must be above zero")
            return cls(mean, scale, coef, intercept, c)
        except (KeyError, TypeError, ValueError) as e:
            raise AlignlabError(f"{where}: not a p-ik probe ({e})") from None


def probe_scores(probe: Probe, rows: list[dict], seed: int, n_resamples: int) -> dict:
    """Table 1's AUROC and Brier against the ground truth binarised at 0.5, ECE, mean P(IK) and share right."""
    p = probe.predict([s["features"] for s in rows])
    fraction = np.array([s["fraction_right"] for s in rows], dtype=float)
    knows = (fraction > 0.5).astype(float)

    def estimate(statistic, method="percentile"):
        return bootstrap_estimate(
            statistic, (p, knows, fraction), n_resamples, seed=seed, method=method
        ).to_json()

    return {
        "n": len(rows),
        "auroc": estimate(lambda q, k, f: cal.auroc(q, k)),
        "brier": estimate(lambda q, k, f: cal.brier_score(q, k)),
        "ece": estimate(lambda q, k, f: cal.expected_calibration_error(q, k, 10), "bc"),
        "mean_p_ik": estimate(lambda q, k, f: q.mean(-1)),
        "mean_fraction": estimate(lambda q, k, f: f.mean(-1)),
        "share_known": estimate(lambda q, k, f: k.mean(-1)),
    }
