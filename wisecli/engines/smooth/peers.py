"""The peers CS is compared with: the baselines of ``evaluate`` (features of the raw values of the last W samples
e−W+1 … e of each window) and, for ``benchmark``, the reference-form per-window loop of steps 6-11.

- Tuncer: O. Tuncer et al., "Online Diagnosis of Performance Variation in HPC Systems Using Machine Learning",
  IEEE TPDS 2019 — 11 per sensor: mean, std, sum of first differences, sum of absolute differences, percentiles
  0/5/25/50/75/95/100.
- Bodik: P. Bodík et al., "Fingerprinting the Datacenter", EuroSys 2010 — 9 percentiles 0/5/25/35/50/65/75/95/100.
- Lan: Z. Lan et al., "Toward Automated Anomaly Identification in Large-Scale Systems", IEEE TPDS 2010 — a
  10-point piecewise aggregate (segment means). Q9 (reference) refuses W not divisible by 10; fixed uses 10
  near-equal segments [⌊kW/10⌋, ⌊(k+1)W/10⌋), widened to one sample where W < 10 makes a segment empty.
- stats [reconstructed]: mean, std (population), min, max.
- MiniRocket: A. Dempster, D. Schmidt, G. Webb, KDD 2021, via aeon (optional), fitted on training windows.

Feature layout: feature-major (all sensors' first feature, then the second ...). All vectorised over windows in
chunks of about 4 M values; percentiles use numpy's default linear interpolation.
"""

from __future__ import annotations

import numpy as np

from wisecli.cli.errors import InputError

from .algorithm import FIXED, Model, Quirks, block_matrix

TUNCER_Q = (0, 5, 25, 50, 75, 95, 100)
BODIK_Q = (0, 5, 25, 35, 50, 65, 75, 95, 100)
BASELINES = ("tuncer", "bodik", "lan", "stats", "minirocket")
PER_SENSOR = {"tuncer": 11, "bodik": 9, "lan": 10, "stats": 4}


def windows_view(X: np.ndarray, ends: np.ndarray, W: int) -> np.ndarray:
    """(n_windows, W, S) view of samples e−W+1 … e (a strided view, no copy)."""
    v = np.lib.stride_tricks.sliding_window_view(X, W, axis=0)  # (T−W+1, S, W): v[i] = X[i : i+W]
    return np.swapaxes(v[np.asarray(ends) - W + 1], 1, 2)


def lan_bounds(W: int, quirks: Quirks = FIXED) -> list[tuple[int, int]]:
    if "Q9" in quirks and W % 10:
        raise InputError(f"the Lan baseline (reference quirk Q9) needs a window divisible by 10, got {W}",
                         hint="use --quirks fixed, or a window such as 20 or 60")
    out = []
    for k in range(10):
        lo = k * W // 10
        hi = max((k + 1) * W // 10, lo + 1)
        out.append((min(lo, W - 1), min(hi, W)))
    return out


def _one(name: str, w: np.ndarray, quirks: Quirks) -> np.ndarray:
    if name == "stats":
        parts = [w.mean(1), w.std(1), w.min(1), w.max(1)]
    elif name == "tuncer":
        d = np.diff(w, axis=1)
        parts = [w.mean(1), w.std(1), d.sum(1), np.abs(d).sum(1), *np.percentile(w, TUNCER_Q, axis=1)]
    elif name == "bodik":
        parts = list(np.percentile(w, BODIK_Q, axis=1))
    elif name == "lan":
        parts = [w[:, lo:hi].mean(1) for lo, hi in lan_bounds(w.shape[1], quirks)]
    else:
        raise ValueError(name)
    return np.concatenate(parts, axis=1)


def features(name: str, X: np.ndarray, ends: np.ndarray, W: int, quirks: Quirks = FIXED) -> np.ndarray:
    """Baseline features of every window (n_windows × k·S) of one series (T × S)."""
    if name == "lan":
        lan_bounds(W, quirks)
    S = X.shape[1]
    out = np.empty((len(ends), PER_SENSOR[name] * S))
    per = max(1, (1 << 22) // max(1, W * S))
    for c in range(0, len(ends), per):
        out[c:c + per] = _one(name, windows_view(X, ends[c:c + per], W), quirks)
    return out


def have_aeon() -> bool:
    try:
        import aeon  # noqa: F401
        return True
    except ImportError:
        return False


class MiniRocketFeatures:
    """MiniRocket (aeon) fitted on training windows, as (n, S, W) collections."""

    def __init__(self, seed: int = 0):
        if not have_aeon():
            raise InputError("the minirocket baseline needs aeon", hint="pip install 'wisecli[rocket]'")
        from aeon.transformations.collection.convolution_based import MiniRocket

        self.t = MiniRocket(random_state=seed)

    def fit(self, wins: np.ndarray):
        self.t.fit(np.ascontiguousarray(np.swapaxes(wins, 1, 2)))
        return self

    def transform(self, wins: np.ndarray) -> np.ndarray:
        return np.asarray(self.t.transform(np.ascontiguousarray(np.swapaxes(wins, 1, 2))), dtype=np.float64)


# ------------------------------------------------------------------------------------- benchmark peer
def loop_signature(Xn_sorted_window: np.ndarray, M: np.ndarray, W: int) -> np.ndarray:
    """Reference-form steps 9-11 for one window of normalised, sorted rows (W+1 × S)."""
    a = Xn_sorted_window[1:].mean(axis=0)
    d = np.diff(Xn_sorted_window, axis=0).mean(axis=0)
    return np.concatenate([M @ a, M @ d])


def reference_loop(model: Model, X: np.ndarray, ends: np.ndarray, W: int, B: int) -> np.ndarray:
    """The per-window loop of the reference form (steps 6-11 for each window separately; numpy, float64)."""
    M = block_matrix(model.n_sensors, B)
    rng = model.fmax - model.fmin + model.eps
    out = np.empty((len(ends), 2 * M.shape[0]))
    for k, e in enumerate(ends):
        win = np.clip((X[e - W:e + 1] - model.fmin) / rng, 0.0, 1.0)[:, model.order]
        out[k] = loop_signature(win, M, W)
    return out
