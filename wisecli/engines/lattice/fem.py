"""Full-order FEM of a Q4 plane-stress mesh (no CWROM code): the element matrix, fixed-pattern sparse
assembly, Dirichlet masking, and two linear solvers.

- KE: bilinear square element, E = 1, thickness 1, 2 × 2 Gauss (exact for a square; equals top88's closed form).
  A square's KE does not depend on its side, so one KE serves every element of every mesh.
- Assembly: the COO → CSR map of the 64 entries of every element is computed once per mesh (`System`); a new
  design only rewrites the CSR `values` with one `index_add_` (never a re-coalesce).
- Dirichlet DOFs by masking: their rows and columns are zero, the diagonal is one, the right-hand side zero.
- `pcg`: preconditioned CG in torch fp64 (CPU or CUDA), ‖r‖ ≤ tol·‖f‖ (1e-8), warm start, convergence
  checked every 25 iterations (one host sync); an unconverged solve raises `NotConverged`, never returns.
  Preconditioners: `jacobi`, and `twolevel` ([reconstructed], our addition): Jacobi plus a coarse space of every
  joint's rigid-body motions. Measured: on an 8 × 4 lattice (m = 4) with 35 % of the struts void, Jacobi PCG is
  at a relative residual of 1.7 after 3 000 iterations (and the spec's E_min = 1e-6 does not prevent it: the
  optimised 8 × 4 demo design stalls at 1.3e-5 after 20 000), while `twolevel` converges in 525. `auto` (the
  default) is `twolevel` on lattices and `jacobi` on plain grids (top88).
- `direct`: scipy's SuperLU (`spsolve`) on the host. `auto`: direct on CPU below 300 000 DOF, else PCG.
- `--precond mg` (geometric multigrid) is planned, not in this version: the option is refused with a hint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from wisecli.cli.errors import WorkFailed

AUTO_DIRECT_MAX_DOF = 300_000
CHECK_EVERY = 25


class NotConverged(WorkFailed):
    """A PCG that missed its tolerance within its iteration limit (exit 1), with the last residual."""

    def __init__(self, iters: int, rel_residual: float, tol: float):
        super().__init__(f"PCG did not converge: relative residual {rel_residual:.3e} > {tol:.1e} after {iters} "
                         "iterations", hint="use --linear-solver direct on CPU, a coarser --mesh, or check that every "
                         "part of the lattice is supported")
        self.iters, self.rel_residual = iters, rel_residual


def ke_q4(nu: float = 0.3) -> np.ndarray:
    """The 8 × 8 stiffness of a square bilinear plane-stress element (E = 1, unit thickness) by 2 × 2 Gauss.
    Nodes counter-clockwise from the lower left (y up), DOFs (x1, y1, x2, y2, ...)."""
    D = np.array([[1.0, nu, 0.0], [nu, 1.0, 0.0], [0.0, 0.0, (1.0 - nu) / 2]]) / (1.0 - nu * nu)
    xi_n = np.array([-1.0, 1.0, 1.0, -1.0])
    eta_n = np.array([-1.0, -1.0, 1.0, 1.0])
    g = 1.0 / math.sqrt(3.0)
    KE = np.zeros((8, 8))
    for xi in (-g, g):
        for eta in (-g, g):
            dN_dxi = xi_n * (1 + eta * eta_n) / 4
            dN_deta = eta_n * (1 + xi * xi_n) / 4
            # square of side a: x = a(ξ+1)/2, so d/dx = (2/a) d/dξ and det J = a²/4; KE is independent of a (a = 2)
            B = np.zeros((3, 8))
            B[0, 0::2] = dN_dxi
            B[1, 1::2] = dN_deta
            B[2, 0::2] = dN_deta
            B[2, 1::2] = dN_dxi
            KE += B.T @ D @ B  # weight 1, det J = 1 at a = 2
    return KE


@dataclass
class SolveInfo:
    """What one linear solve did."""

    solver: str
    iters: int
    rel_residual: float
    seconds: float


class System:
    """The fixed sparsity pattern of one mesh on one device: assemble K(E_e) by rewriting values only."""

    def __init__(self, mesh, device: torch.device | str = "cpu", nu: float = 0.3):
        device = torch.device(device)
        self.device = device
        self.n = mesh.n_dof
        edof = np.asarray(mesh.edof, dtype=np.int64)
        fixed = np.asarray(mesh.fixed, dtype=bool)
        # the pattern is built on the device (torch.unique sorts 64·n_el keys: seconds on a CPU at 10⁶ elements,
        # milliseconds on a GPU)
        ed = torch.from_numpy(edof).to(device)
        fx = torch.from_numpy(fixed).to(device)
        rows = ed.repeat_interleave(8, dim=1).reshape(-1)
        cols = ed.repeat(1, 8).reshape(-1)
        fixed_idx = torch.nonzero(fx).flatten()
        key = torch.cat([rows * self.n + cols, fixed_idx * self.n + fixed_idx])
        uniq, perm = torch.unique(key, sorted=True, return_inverse=True)
        del key
        self.nnz = int(uniq.numel())
        r_u = torch.div(uniq, self.n, rounding_mode="floor")
        c_u = uniq - r_u * self.n
        counts = torch.bincount(r_u, minlength=self.n)
        self.crow = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), torch.cumsum(counts, 0)])
        self.col = c_u
        n_el_entries = rows.numel()
        self.perm = perm[:n_el_entries]
        self.keep = (~(fx[rows] | fx[cols])).to(torch.float64)
        self.diag_fixed = perm[n_el_entries:]
        self.ke = torch.from_numpy(ke_q4(nu)).to(device)
        self.edof = ed
        self.free = ~fx
        self.diag_slot = torch.nonzero(r_u == c_u).flatten()
        self.f = torch.from_numpy(np.where(fixed, 0.0, np.asarray(mesh.f, dtype=np.float64))).to(device)
        self.coarse = None
        if getattr(mesh, "aggregate", None) is not None:
            # R: each node's 2 × 3 rigid-body map of its joint (x, y translation, rotation about the joint centre);
            # zero rows at fixed DOFs, so PᵀKP is the coarse matrix of the masked K
            agg = np.asarray(mesh.aggregate, dtype=np.int64)
            d = mesh.coords - mesh.aggregate_centre[agg]
            R = np.zeros((len(agg), 2, 3))
            R[:, 0, 0] = 1.0
            R[:, 1, 1] = 1.0
            R[:, 0, 2] = -d[:, 1]
            R[:, 1, 2] = d[:, 0]
            R[fixed.reshape(-1, 2)] = 0.0
            self.coarse = (torch.from_numpy(agg).to(device), torch.from_numpy(R).to(device),
                           int(agg.max()) + 1)

    def assemble(self, E: torch.Tensor) -> torch.Tensor:
        """CSR values of the masked K for element moduli `E` (n_el,), one index_add_ into the fixed pattern."""
        contrib = (E.to(self.ke.dtype)[:, None] * self.ke.reshape(1, 64)).reshape(-1) * self.keep
        values = torch.zeros(self.nnz, dtype=torch.float64, device=self.device)
        values.index_add_(0, self.perm, contrib)
        values[self.diag_fixed] = 1.0
        return values

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """The torch sparse CSR matrix of `values`."""
        import warnings

        with warnings.catch_warnings():  # "sparse CSR support is in beta" and the invariant-check notice
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col, values, size=(self.n, self.n))

    def scipy(self, values: torch.Tensor):
        """The same matrix as a scipy CSR matrix (host)."""
        import scipy.sparse as sp

        return sp.csr_matrix((values.cpu().numpy(), self.col.cpu().numpy(), self.crow.cpu().numpy()),
                             shape=(self.n, self.n))

    def diagonal(self, values: torch.Tensor) -> torch.Tensor:
        """diag(K) (the Jacobi preconditioner)."""
        return values[self.diag_slot]

    def element_energy(self, u: torch.Tensor) -> torch.Tensor:
        """u_eᵀ KE u_e of every element (E = 1), one gather and one einsum."""
        ue = u[self.edof]
        return torch.einsum("ei,ij,ej->e", ue, self.ke, ue)


class TwoLevel:
    """Additive two-level preconditioner M⁻¹r = D⁻¹r + P A_c⁻¹ Pᵀr for lattices: the coarse space P holds the
    rigid-body motions (2 translations, 1 rotation) of every joint's aggregate (the joint and the near halves of its
    struts), A_c = PᵀKP (3 per joint, dense Cholesky). A joint hanging on void struts (E_min) has rigid motions
    with ~1e-6 of the stiffness of its own deformation modes, which Jacobi alone cannot resolve (PCG stalls); the
    coarse space holds exactly those motions. Standard aggregation with rigid-body modes (smoothed-aggregation
    AMG's tentative prolongator), not a reduced model: the solution is the full-order one to the same tolerance."""

    def __init__(self, system: "System", E: torch.Tensor, values: torch.Tensor):
        agg, R, n_agg = system.coarse
        self.agg, self.R, self.n_agg = agg, R, n_agg
        self.minv = 1.0 / system.diagonal(values)
        enode = system.edof[:, 0::2] // 2  # (n_el, 4) nodes
        Re = R[enode]  # (n_el, 4, 2, 3)
        KE = system.ke.reshape(4, 2, 4, 2)
        C = torch.einsum("ekpi,kplq,elqj->eklij", Re, KE, Re) * E.to(R.dtype)[:, None, None, None, None]
        ea = agg[enode]  # (n_el, 4)
        rows = (3 * ea[:, :, None, None, None] + torch.arange(3, device=R.device)[None, None, None, :, None])
        cols = (3 * ea[:, None, :, None, None] + torch.arange(3, device=R.device)[None, None, None, None, :])
        n = 3 * n_agg
        Ac = torch.zeros(n * n, dtype=R.dtype, device=R.device)
        Ac.index_add_(0, (rows * n + cols).expand_as(C).reshape(-1), C.reshape(-1))
        Ac = Ac.reshape(n, n)
        Ac = Ac + torch.diag((Ac.diagonal() == 0).to(Ac.dtype))  # a joint with every DOF fixed
        self.L = torch.linalg.cholesky(Ac)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        rn = r.reshape(-1, 2)
        local = torch.einsum("npi,np->ni", self.R, rn)  # (n_nodes, 3)
        rc = torch.zeros(self.n_agg, 3, dtype=r.dtype, device=r.device).index_add_(0, self.agg, local)
        ec = torch.cholesky_solve(rc.reshape(-1, 1), self.L).reshape(-1, 3)
        coarse = torch.einsum("npi,ni->np", self.R, ec[self.agg]).reshape(-1)
        return self.minv * r + coarse


def pcg(A: torch.Tensor, b: torch.Tensor, diag: torch.Tensor, x0: torch.Tensor | None = None, tol: float = 1e-8,
        max_iter: int = 20_000, check_every: int = CHECK_EVERY, precond=None) -> tuple[torch.Tensor, int, float]:
    """PCG for the SPD CSR matrix `A` with Jacobi (`diag`) or a given preconditioner `precond(r)`: (x, iterations,
    ‖b − Ax‖/‖b‖). The residual norm is read on the host every `check_every` iterations only; missing `tol` within
    `max_iter` raises `NotConverged`."""
    bnorm = torch.linalg.vector_norm(b)
    if float(bnorm) == 0.0:
        return torch.zeros_like(b), 0, 0.0
    if precond is None:
        minv = 1.0 / diag
        precond = minv.__mul__
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - A @ x if x0 is not None else b.clone()
    z = precond(r)
    p = z.clone()
    rz = torch.dot(r, z)
    target = tol * bnorm
    it = 0
    while True:
        if it % check_every == 0:
            rnorm = torch.linalg.vector_norm(r)
            if float(rnorm) <= float(target):
                break
            if it >= max_iter:
                raise NotConverged(it, float(rnorm / bnorm), tol)
        Ap = A @ p
        alpha = rz / torch.dot(p, Ap)
        x.add_(alpha * p)
        r.sub_(alpha * Ap)
        z = precond(r)
        rz_new = torch.dot(r, z)
        p.mul_(rz_new / rz).add_(z)
        rz = rz_new
        it += 1
    rel = float(torch.linalg.vector_norm(b - A @ x) / bnorm)
    if not rel <= tol * 10:  # the recursive residual drifted from the true one
        raise NotConverged(it, rel, tol)
    return x, it, rel


def direct(system: System, values: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, float]:
    """scipy SuperLU solve on the host (minimum-degree ordering on KᵀK + K, one refinement step): (x on b's device,
    relative residual)."""
    x, rel = splu_solve(system.scipy(values), b.cpu().numpy())
    return torch.from_numpy(x).to(b.device), rel


def splu_solve(K, bb: np.ndarray) -> tuple[np.ndarray, float]:
    """SuperLU of a scipy sparse matrix (minimum-degree ordering on KᵀK + K, one refinement step): (x, relative
    residual); a singular or non-finite solve is `WorkFailed`."""
    import warnings

    import scipy.sparse.linalg as spla

    K = K.tocsc()
    with warnings.catch_warnings():
        warnings.simplefilter("error", spla.MatrixRankWarning)
        try:
            lu = spla.splu(K, permc_spec="MMD_AT_PLUS_A")
        except (RuntimeError, spla.MatrixRankWarning):  # "Factor is exactly singular"
            raise WorkFailed("the stiffness matrix is singular", hint="check that every part is supported") from None
    x = lu.solve(bb)
    x += lu.solve(bb - K @ x)  # one step of iterative refinement: residual ~1e-16 instead of ~1e-11
    if not np.all(np.isfinite(x)):
        raise WorkFailed("the direct solve gave non-finite displacements", hint="check the supports and loads")
    nb = np.linalg.norm(bb)
    return x, float(np.linalg.norm(bb - K @ x) / nb) if nb > 0 else 0.0


def pick_solver(linear_solver: str, device: torch.device, n_dof: int) -> str:
    """`auto` → direct on CPU below 300 k DOF, else PCG; otherwise the solver asked for."""
    if linear_solver == "auto":
        return "direct" if device.type == "cpu" and n_dof < AUTO_DIRECT_MAX_DOF else "pcg"
    return linear_solver


def pick_precond(precond: str, system: System) -> str:
    """`auto` → the two-level preconditioner on lattices (joints give its coarse space), Jacobi on plain grids."""
    if precond == "auto":
        return "twolevel" if system.coarse is not None else "jacobi"
    return precond


def solve(system: System, values: torch.Tensor, *, solver: str = "auto", x0: torch.Tensor | None = None,
          tol: float = 1e-8, max_iter: int = 20_000, b: torch.Tensor | None = None, precond: str = "auto",
          E: torch.Tensor | None = None) -> tuple[torch.Tensor, SolveInfo]:
    """K u = f (or b) with the chosen solver (and PCG preconditioner; `twolevel` needs the element moduli `E`);
    returns u on the system's device and what the solve did."""
    from wisecli.runtime.device import sync

    b = system.f if b is None else b
    name = pick_solver(solver, system.device, system.n)
    sync(system.device)
    t0 = time.perf_counter()
    if name == "direct":
        u, rel = direct(system, values, b)
        iters = 0
    else:
        pre = TwoLevel(system, E, values) if pick_precond(precond, system) == "twolevel" else None
        u, iters, rel = pcg(system.matrix(values), b, system.diagonal(values), x0=x0, tol=tol, max_iter=max_iter,
                            precond=pre)
    sync(system.device)
    return u, SolveInfo(name, iters, rel, time.perf_counter() - t0)
