"""How well a sparse X explains B, and the comparison `evaluate` makes: matrix-wise (exact, union) against
column-wise (exact, NNOMP, homotopy) and global (top-q, one λ) heuristics at every budget (spec §3, §5).

Relative error ‖AX − B‖_F / ‖B‖_F (`rel_error_pct` = 100×); with ground truth, support F1 over all (atom, pixel)
pairs and the abundance RMSE on the true support. Every method's nnz must stay ≤ q (asserted).
"""

from __future__ import annotations

import time

import numpy as np

from wisecli.cli.errors import InputError

from .algorithm import (EVAL_METHODS, budget, coefficients, compute_fronts, global_lambda, global_topq, rel_error,
                        select)


def f1_rmse(X, X_true) -> tuple[float, float]:
    """Support F1 of X against X_true (all entries) and the RMSE of X on the true support."""
    est, tru = X > 0, X_true > 0
    tp = int((est & tru).sum())
    f1 = 2 * tp / max(int(est.sum()) + int(tru.sum()), 1)
    rmse = float(np.sqrt(np.mean((X[tru] - X_true[tru]) ** 2))) if tru.any() else 0.0
    return f1, rmse


def evaluate(A, B, avg_nnz, *, methods=None, x_true=None, dataset: str | None = None, device="auto",
             front: str = "auto", select_method: str = "dp", kmax: int | None = None, progress=None,
             **front_kw) -> list[dict]:
    """Matrix-wise against column-wise and global heuristics (spec §3 `evaluate`): one record per
    (method, budget). Fronts are computed once per method; column-wise methods run only at integral q/n."""
    from scipy.optimize import nnls as scipy_nnls

    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    n, r = B.shape[1], A.shape[1]
    methods = list(methods or EVAL_METHODS)
    for m in methods:
        if m not in EVAL_METHODS:
            raise InputError(f"unknown method '{m}'", hint=f"choose from {', '.join(EVAL_METHODS)}")
    budgets = [(float(a), budget(n, r, avg_nnz=a)) for a in avg_nnz]
    cache: dict = {}

    def fr(kind):
        if kind not in cache:
            cache[kind] = compute_fronts(A, B, front=kind, kmax=kmax, device=device, **front_kw)
        return cache[kind]

    records = []

    def emit(method, a, q, X, seconds):
        nnz = int((X != 0).sum())
        assert nnz <= q, f"{method} broke the budget: {nnz} > {q}"
        rec = {"dataset": dataset, "method": method, "avg_nnz": a, "q": q, "nnz": nnz,
               "rel_error_pct": 100 * rel_error(A, X, B), "seconds": round(seconds, 4)}
        if x_true is not None:
            rec["support_f1"], rec["abundance_rmse"] = f1_rmse(X, x_true)
        records.append(rec)
        if progress is not None:
            progress(rec)

    front_of = {"matrixwise-exact": front, "matrixwise-union": "union", "columnwise-exact": front,
                "columnwise-nnomp": "greedy", "columnwise-homotopy": "homotopy"}
    for method in methods:
        for a, q in budgets:
            t0 = time.perf_counter()
            if method in front_of:
                integral = abs(a - round(a)) < 1e-12
                if method.startswith("columnwise") and not integral:
                    continue
                f = fr(front_of[method])
                if method.startswith("matrixwise"):
                    k = select(f, q, select_method).k
                else:
                    k = np.full(n, min(int(round(a)), f.kmax))
                X = coefficients(f, B, k, device=device)
                secs = f.seconds + time.perf_counter() - t0
            elif method == "global-topq":
                X = global_topq(A, B, q, device)
                secs = time.perf_counter() - t0
            elif method == "global-lambda":
                X = global_lambda(A, B, q, device, 4 * r)
                secs = time.perf_counter() - t0
            else:
                X = np.stack([scipy_nnls(A, B[:, j])[0] for j in range(n)], 1)
                secs = time.perf_counter() - t0
                if int((X != 0).sum()) > q:  # the error floor, reported once and outside the budget
                    if a == budgets[0][0]:
                        rec = {"dataset": dataset, "method": method, "avg_nnz": float((X != 0).sum() / n),
                               "q": int((X != 0).sum()), "nnz": int((X != 0).sum()),
                               "rel_error_pct": 100 * rel_error(A, X, B), "seconds": round(secs, 4)}
                        if x_true is not None:
                            rec["support_f1"], rec["abundance_rmse"] = f1_rmse(X, x_true)
                        records.append(rec)
                    continue
            emit(method, a, q, X, secs)
    return records
