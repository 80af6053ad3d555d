"""Online CWROM solve (OPTIONAL, patented method: see NOTICE): reduced assembly, solve, recovery, sensitivities.

For a lattice mesh and a library (`library`), every component c of archetype a gets its reduced matrix
S_r,a = W_aᵀŜ_aW_a, W_a the block-diagonal map from its reduced unknowns (n_p modes per port, one per free vertex
DOF) to its skeleton DOFs (Φ blocks and identities). The global reduced system Σ_c E(ρ_c)P_cᵀS_r,cP_c û = Σ_c
P_cᵀW_cᵀf̂_c (size #ports·n_p + #vertex DOFs, SPD) is assembled by one `index_add_` into a fixed pattern and solved
by dense Cholesky up to `DENSE_MAX` unknowns, else by Jacobi PCG (torch fp64) — on a GPU. On the CPU
([reconstructed], measured): above `CPU_DENSE_MAX` unknowns by scipy's sparse LU (the reduced system is block
sparse): at 16 × 8, m = 8, n_p = 8 (5 664 unknowns) dense Cholesky took 13 s on one shared core, SuperLU 0.3 s. Recovery: u_s = W_cû_c, interiors
u_i = ext_a u_s + K̂_ii⁻¹f_i/E_c, batched per archetype (`bmm`).

- Compliance: c = f̂ᵀû + Σ_c f_iᵀK̂_ii⁻¹f_i/E_c (the last term: loads inside solid joints).
- Sensitivities: ∂c/∂ρ_c = −E′(ρ_c)·û_cᵀS_r,cû_c (one batched quadratic form per archetype), the exact derivative
  of the ROM compliance (loads never sit on struts; design joints are refused with the ROM).
- Galerkin truncation on a conforming subspace: c_ROM ≤ c_FOM, non-decreasing in n_p (Φ is nested), equal to
  static condensation (= the FOM) at n_p = 2(m − 1). Solver `sc` uses Φ = I (no port reduction).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..fem import SolveInfo
from ..topopt import E0, EMIN
from . import condensation as cd
from .ports import port_dim

DENSE_MAX = 8000
CPU_DENSE_MAX = 2000


def _sparse_lu(crow, col, values, b, n):
    """The reduced system by the full-order model's SuperLU solve on the host (`fem.splu_solve`)."""
    import scipy.sparse as sp

    from ..fem import splu_solve

    x, rel = splu_solve(sp.csr_matrix((values.numpy(), col.numpy(), crow.numpy()), shape=(n, n)), b.numpy())
    return torch.from_numpy(x), rel


class Rom:
    """The reduced model of one lattice mesh at n_p modes per port (`modes=None`: static condensation, `sc`)."""

    def __init__(self, mesh, library: dict, modes: int | None, *, device="cpu", penal: float = 3.0,
                 emin: float = EMIN):
        self.mesh, self.device, self.penal, self.emin = mesh, torch.device(device), float(penal), float(emin)
        part = cd.partition(mesh)
        self.part = part
        m = part.m
        d = port_dim(m)
        n = d if modes is None else int(modes)
        self.modes = modes
        phi = {t: (np.eye(d) if modes is None else np.asarray(library["phi"][t], dtype=np.float64)[:, :n])
               for t in ("x", "y")}
        vertex_index = {int(v): k for k, v in enumerate(part.vertex_dofs)}
        n_ports = len(part.ports)
        self.N = n_ports * n + len(part.vertex_dofs)
        fixed = np.asarray(mesh.fixed, dtype=bool)
        f = np.where(fixed, 0.0, np.asarray(mesh.f, dtype=np.float64))
        groups: dict = {}
        for c in range(part.n_comp):
            cls = cd.local_classes(part, c, fixed, vertex_index)
            groups.setdefault((part.kinds[c], cls.tobytes()), (cls, []))[1].append(c)
        self.groups = []
        b = np.zeros(self.N)
        q_const = np.zeros(part.n_comp)
        load_fix = []  # (component, interior global DOFs, K̂_ii⁻¹ f_i)
        idx_all, val_all, comp_all = [], [], []
        dev = self.device
        for (kind, _), (cls, comps) in groups.items():
            arch = archetype(library, kind, cls, m, part.L)
            S, ext, sk, ii = arch["S"], arch["ext"], arch["sk"], arch["ii"]
            skc = cls[sk]
            slots = sorted({int(v) // 10_000 for v in skc if v >= 0})
            ptype = {0: "x", 1: "x", 2: "y", 3: "y"} if kind == cd.JOINT else \
                {0: "x", 1: "x"} if kind == cd.HSTRUT else {0: "y", 1: "y"}
            vert = [j for j, v in enumerate(skc) if v == cd.VERTEX]
            nr = len(slots) * n + len(vert)
            W = np.zeros((len(sk), nr))
            for j, v in enumerate(skc):
                if v >= 0:
                    slot, q = divmod(int(v), 10_000)
                    k = slots.index(slot)
                    W[j, k * n:(k + 1) * n] = phi[ptype[slot]][q]
            for k, j in enumerate(vert):
                W[j, len(slots) * n + k] = 1.0
            Sr = W.T @ S @ W
            Sr = 0.5 * (Sr + Sr.T)
            G = np.zeros((len(comps), nr), dtype=np.int64)
            for r, c in enumerate(comps):
                pid_of_slot = dict(part.comp_ports[c])
                for k, slot in enumerate(slots):
                    G[r, k * n:(k + 1) * n] = pid_of_slot[slot] * n + np.arange(n)
                ldofs = part.local_dofs[c]
                G[r, len(slots) * n:] = [n_ports * n + vertex_index[int(ldofs[sk[j]])] for j in vert]
                fl = f[ldofs]
                # a skeleton node belongs to exactly one joint: its load is counted there only
                fs, fi = (fl[sk] if kind == cd.JOINT else 0.0 * fl[sk]), fl[ii]
                np.add.at(b, G[r], W.T @ (fs + ext.T @ fi))
                if np.any(fi != 0):
                    gi = interior_solve(library, kind, cls, m, part.L, fi)
                    q_const[c] = float(fi @ gi)
                    load_fix.append((c, ldofs[ii], gi))
            idx_all.append((G[:, :, None] * self.N + G[:, None, :]).reshape(-1))
            val_all.append(np.broadcast_to(Sr, (len(comps), nr, nr)).reshape(-1))
            comp_all.append(np.repeat(np.asarray(comps), nr * nr))
            self.groups.append({
                "comps": torch.as_tensor(np.asarray(comps), device=dev), "G": torch.as_tensor(G, device=dev),
                "Sr": torch.as_tensor(Sr, device=dev), "W": torch.as_tensor(W, device=dev),
                "ext": torch.as_tensor(ext, device=dev),
                "sk_dofs": torch.as_tensor(np.stack([part.local_dofs[c][sk] for c in comps]), device=dev),
                "ii_dofs": torch.as_tensor(np.stack([part.local_dofs[c][ii] for c in comps]), device=dev)})
        key = np.concatenate(idx_all)
        uniq, perm = np.unique(key, return_inverse=True)
        self.dense = self.N <= DENSE_MAX
        self.perm = torch.as_tensor(perm.reshape(-1), device=dev)
        self.entry_val = torch.as_tensor(np.concatenate(val_all), device=dev)
        self.entry_comp = torch.as_tensor(np.concatenate(comp_all), device=dev)
        self.uniq = torch.as_tensor(uniq, device=dev)
        rows, cols = uniq // self.N, uniq % self.N
        self.crow = torch.as_tensor(np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.N))]), device=dev)
        self.col = torch.as_tensor(cols, device=dev)
        self.diag_slot = torch.as_tensor(np.nonzero(rows == cols)[0], device=dev)
        self.b = torch.as_tensor(b, device=dev)
        self.q = torch.as_tensor(q_const, device=dev)
        self.load_fix = [(c, torch.as_tensor(dofs, device=dev), torch.as_tensor(gi, device=dev))
                         for c, dofs, gi in load_fix]
        self.comp_var = torch.as_tensor(part.var, device=dev)
        self.design_comp = torch.nonzero(self.comp_var >= 0).flatten()
        self.n_vars = int(mesh.n_vars)
        self.volume = torch.as_tensor(np.asarray(mesh.var_volume, dtype=np.float64), device=dev)
        self.dofs_rom = self.N
        self.solver_name = ("sparse LU" if self.device.type == "cpu" and self.N > CPU_DENSE_MAX else
                            "dense cholesky" if self.dense else "jacobi pcg")

    # ---------------------------------------------------------------------------------------------------------
    def moduli(self, rho: torch.Tensor) -> torch.Tensor:
        """E_c of every component: SIMP of its strut's ρ, E0 for joints and fixed struts."""
        E = torch.full((len(self.part.kinds),), E0, dtype=torch.float64, device=self.device)
        E[self.design_comp] = self.emin + rho[self.comp_var[self.design_comp]] ** self.penal * (E0 - self.emin)
        return E

    def solve(self, rho: torch.Tensor):
        """(û, E, ROM compliance, ∂c/∂ρ, solve info) at design ρ."""
        t0 = time.perf_counter()
        rho = rho.to(self.device, torch.float64)
        E = self.moduli(rho)
        contrib = E[self.entry_comp] * self.entry_val
        values = torch.zeros(self.uniq.numel(), dtype=torch.float64, device=self.device).index_add_(0, self.perm, contrib)
        if self.device.type == "cpu" and self.N > CPU_DENSE_MAX:
            u, rel = _sparse_lu(self.crow, self.col, values, self.b, self.N)
            iters, name = 0, "sparse LU"
        elif self.dense:
            A = torch.zeros(self.N * self.N, dtype=torch.float64, device=self.device)
            A[self.uniq] = values
            A = A.reshape(self.N, self.N)
            Lc = torch.linalg.cholesky(A)
            u = torch.cholesky_solve(self.b.reshape(-1, 1), Lc).reshape(-1)
            u = u + torch.cholesky_solve((self.b - A @ u).reshape(-1, 1), Lc).reshape(-1)  # one refinement step
            iters, name = 0, "dense cholesky"
            rel = float(torch.linalg.vector_norm(A @ u - self.b) / torch.linalg.vector_norm(self.b))
        else:
            from ..fem import pcg
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                A = torch.sparse_csr_tensor(self.crow, self.col, values, size=(self.N, self.N))
            u, iters, rel = pcg(A, self.b, values[self.diag_slot], tol=1e-10)
            name = "jacobi pcg"
        c = torch.dot(self.b, u) + torch.sum(self.q / E)
        dE = self.penal * rho ** (self.penal - 1) * (E0 - self.emin)
        dc = torch.zeros(self.n_vars, dtype=torch.float64, device=self.device)
        for g in self.groups:
            U = u[g["G"]]
            quad = torch.einsum("cr,rs,cs->c", U, g["Sr"], U)
            var = self.comp_var[g["comps"]]
            keep = var >= 0
            if bool(keep.any()):
                dc.index_add_(0, var[keep], -dE[var[keep]] * quad[keep])
        info = SolveInfo(f"{'cwrom' if self.modes else 'sc'} ({name}, {self.N} unknowns)", iters, rel,
                         time.perf_counter() - t0)
        return u, E, float(c), dc, info

    def recover(self, u_red: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
        """The displacement on the full mesh: skeletons W û, interiors by the extension (batched per archetype)."""
        out = torch.zeros(self.mesh.n_dof, dtype=torch.float64, device=self.device)
        for g in self.groups:
            us = torch.bmm(u_red[g["G"]].unsqueeze(1), g["W"].T.expand(len(g["comps"]), -1, -1)).squeeze(1)
            out[g["sk_dofs"]] = us
            if g["ext"].shape[0]:
                out[g["ii_dofs"]] = us @ g["ext"].T
        for c, dofs, gi in self.load_fix:
            out[dofs] += gi / E[c]
        return out


def archetype(library: dict, kind: str, cls: np.ndarray, m: int, L: int) -> dict:
    """Ŝ and the extension of an archetype: from the library when it holds it, else condensed from K̂ (and kept
    in the library dict for the next mesh)."""
    key = archetype_key(kind, cls)
    cache = library.setdefault("archetypes", {})
    if key not in cache:
        S, ext, _, sk, ii = cd.condense(reference(library, kind, m, L), cls)
        cache[key] = {"S": S, "ext": ext, "sk": sk, "ii": ii, "classes": cls}
    a = cache[key]
    return {k: np.asarray(a[k]) for k in ("S", "ext", "sk", "ii")}


def archetype_key(kind: str, cls: np.ndarray) -> str:
    """A short stable name of an archetype (kind + digest of its DOF classes)."""
    import hashlib

    return f"{kind}-{hashlib.sha1(np.asarray(cls, dtype=np.int64).tobytes()).hexdigest()[:16]}"


def reference(library: dict, kind: str, m: int, L: int) -> np.ndarray:
    """K̂ of a component type (E = 1), from the library."""
    return np.asarray(library["K"][kind], dtype=np.float64)


def interior_solve(library: dict, kind: str, cls: np.ndarray, m: int, L: int, fi: np.ndarray) -> np.ndarray:
    """K̂_ii⁻¹ f_i of one loaded component."""
    import scipy.linalg as sla

    K = reference(library, kind, m, L)
    ii = np.nonzero(cls == cd.INTERIOR)[0]
    return sla.cho_solve(sla.cho_factor(K[np.ix_(ii, ii)]), fi)


class RomAnalysis:
    """One ROM analysis: compliance, sensitivities, solve info; `u` (the recovered full field) on first use."""

    def __init__(self, rom: Rom, u_red, E, c, dc, info):
        self._rom, self.u_red, self._E, self.compliance, self.dc, self.info = rom, u_red, E, c, dc, info
        self._u = None

    @property
    def u(self) -> torch.Tensor:
        """The displacement on the full mesh (recovered on first use)."""
        if self._u is None:
            self._u = self._rom.recover(self.u_red, self._E)
        return self._u


class RomProblem:
    """`topopt.Problem`'s interface on the reduced model: `analyse(ρ)` gives the ROM's c, ∂c/∂ρ and (lazily) u."""

    def __init__(self, mesh, library: dict, modes: int | None, *, device="cpu", penal: float = 3.0):
        self.rom = Rom(mesh, library, modes, device=device, penal=penal)
        self.mesh, self.device = mesh, self.rom.device
        self.volume, self.n_vars = self.rom.volume, self.rom.n_vars

    def analyse(self, rho: torch.Tensor, *, solver=None, warm: bool = True) -> RomAnalysis:
        """The ROM analysis at ρ."""
        from wisecli.runtime.device import one_cpu_thread

        with one_cpu_thread(self.device):
            return RomAnalysis(self.rom, *self.rom.solve(rho))


def errors(rom_u: torch.Tensor, fom_u: torch.Tensor, K, f: torch.Tensor, c_rom: float, c_fom: float,
           port_dofs: torch.Tensor) -> dict:
    """e_c, e_E (energy norm with the full-order K), e_2 and the max port error (relative to max |u_F|)."""
    d = rom_u - fom_u
    e_energy = math.sqrt(max(float(torch.dot(d, K @ d)), 0.0) / float(torch.dot(fom_u, f)))
    return {"rel_err_compliance": abs(c_rom - c_fom) / abs(c_fom), "rel_err_energy": e_energy,
            "rel_err_l2": float(torch.linalg.vector_norm(d) / torch.linalg.vector_norm(fom_u)),
            "max_port_err": float(d[port_dofs].abs().max() / fom_u.abs().max()) if port_dofs.numel() else 0.0}


def evaluate(*, mesh, library: dict, designs: list, modes: list[int], device, linear_solver: str = "auto",
             repeats: int = 3, penal: float = 3.0, sink=None) -> list[dict]:
    """ROM accuracy and speed against the full-order model on `designs` [(name, ρ)] for every n_p in `modes`:
    {design, modes, dofs_fom, dofs_rom, rel_err_compliance, rel_err_energy, rel_err_l2, max_port_err, t_fom_s,
    t_rom_s, speedup, device}. t_fom: assemble + solve (the chosen linear solver on `device`); t_rom: reduced
    assembly + solve + recovery on `device`; medians of `repeats` after a warm-up (`runtime.device.timed`). The
    ROM's set-up (partition, archetypes, reduced matrices) is per lattice and not timed."""
    from wisecli.runtime.device import device_name, one_cpu_thread, timed

    from .. import topopt

    device = torch.device(device)
    warm = 1 if repeats > 1 else 0
    with one_cpu_thread(device):
        fom = topopt.Problem(mesh, device=device, penal=penal, linear_solver=linear_solver)
        roms = {n: Rom(mesh, library, n, device=device, penal=penal) for n in modes}
    port_dofs = torch.as_tensor(np.concatenate([p[3] for p in roms[modes[0]].part.ports]), device=device)
    records = []
    for name, rho in designs:
        rho_t = torch.as_tensor(np.asarray(rho, dtype=np.float64), device=device)
        with one_cpu_thread(device):
            an, t_fom = timed(lambda: fom.analyse(rho_t, warm=False), device, repeats=repeats, warmup=warm)
            K = fom.system.matrix(fom.system.assemble(fom.moduli(rho_t)))
            for n, rom in roms.items():
                def online():
                    u_red, E, c, _, _ = rom.solve(rho_t)
                    return rom.recover(u_red, E), c

                (u, c), t_rom = timed(online, device, repeats=repeats, warmup=warm)
                rec = {"design": name, "modes": n, "dofs_fom": mesh.n_dof, "dofs_rom": rom.N,
                       **errors(u, an.u, K, fom.system.f, c, an.compliance, port_dofs),
                       "t_fom_s": t_fom, "t_rom_s": t_rom, "speedup": t_fom / t_rom if t_rom > 0 else float("inf"),
                       "device": device_name(device)}
                records.append(rec)
                if sink is not None:
                    sink.debug(f"{name} n_p={n}: e_c {rec['rel_err_compliance']:.2e}, e_E {rec['rel_err_energy']:.2e}")
    return records


BENCH_CASES = {"quick": (4, 2, 4, 4, 100), "ci": (16, 8, 8, 8, 200), "full": (16, 8, 8, 8, 200)}


def bench_records(device, *, size: str, library: dict, modes: int | None, repeats: int = 3,
                  sink=None) -> list:
    """`benchmark --cwrom` rows: the ROM online solve (reduced assembly + solve + recovery on `device`) against the
    full-order direct solve of the peer (scipy `spsolve`, host CPU) on the §5 lattice (`ci`/`full`: 16 × 8, m = 8,
    n_p = 8; `quick`: 4 × 2, m = 4, n_p = 4; the lattice takes the library's m), uniform ρ = 0.5 (`train.bench_library`
    trains one when the user gives none: offline, not timed). `rel_diff_compliance` is the ROM's e_c.
    The ROM's set-up for the lattice (partition, reduced archetype matrices) is recorded as `setup_s`."""
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import one_cpu_thread

    from .. import geometry
    from ..peers import scipy_fom

    nx, ny, m, n_default, _ = BENCH_CASES[size]
    m = int(library["meta"]["m"])
    n = min(modes or n_default, port_dim(m), int(library["meta"]["modes"]))
    mesh = geometry.build_mesh(geometry.ground_structure(nx, ny), m)
    device = torch.device(device)
    t0 = time.perf_counter()
    with one_cpu_thread(device):
        model = Rom(mesh, library, n, device=device)
    setup = time.perf_counter() - t0
    rho = torch.full((mesh.n_vars,), 0.5, dtype=torch.float64, device=device)
    E = np.ones(mesh.n_el)
    E[mesh.var >= 0] = EMIN + 0.5 ** 3 * (E0 - EMIN)

    def ours():
        u_red, Ec, c, _, _ = model.solve(rho)
        model.recover(u_red, Ec)
        return c

    big = mesh.n_dof > 100_000
    with one_cpu_thread(device):
        rec = race(f"cwrom lattice {nx}x{ny} m={m} n_p={n}", ours, lambda: scipy_fom(mesh, E), device=device,
                   peer_name="scipy-spsolve (full order)", repeats=repeats, warmup=1,
                   peer_repeats=1 if big else repeats, peer_warmup=0 if big else 1,
                   check=lambda o, p: {"rel_diff_compliance": abs(o - p[0]) / abs(p[0])}, dofs=mesh.n_dof)
    rec.extra.update(dofs_rom=model.N, modes=n, setup_s=setup, ours_iters=0)
    return [rec]


def compare_optimised(*, mesh, library: dict, modes: list[int], device, linear_solver: str = "auto",
                      volume: float = 0.3, max_iter: int = 200, tol: float = 0.01, penal: float = 3.0) -> list[dict]:
    """`evaluate --compare-optimised`: the OC design optimised with the full-order model and with the ROM at every
    n_p of `modes`, both from the uniform start at `volume`, the ROM's design then analysed by the full-order model:
    {design: "optimised", modes, c_ratio = c_FOM(ρ*_ROM)/c_FOM(ρ*_FOM), rho_l1 = ‖ρ*_ROM − ρ*_FOM‖₁/n, volume_fom,
    volume_rom, t_opt_fom_s, t_opt_rom_s, iters_fom, iters_rom, device}."""
    from wisecli.runtime.device import device_name

    from .. import topopt

    device = torch.device(device)
    fom = topopt.Problem(mesh, device=device, penal=penal, linear_solver=linear_solver)
    start = topopt.uniform(mesh.n_vars, volume)
    v = np.asarray(mesh.var_volume, dtype=np.float64)
    t0 = time.perf_counter()
    rho_f, _, hist_f = topopt.optimise(fom, start, volume=volume, max_iter=max_iter, tol=tol)
    t_fom = time.perf_counter() - t0
    c_f = fom.analyse(rho_f, warm=False).compliance
    out = []
    for n in modes:
        problem = RomProblem(mesh, library, n, device=device, penal=penal)
        t0 = time.perf_counter()
        rho_r, _, hist_r = topopt.optimise(problem, start, volume=volume, max_iter=max_iter, tol=tol)
        t_rom = time.perf_counter() - t0
        c_r = fom.analyse(rho_r, warm=False).compliance
        rf, rr = rho_f.cpu().numpy(), rho_r.cpu().numpy()
        out.append({"design": "optimised", "modes": n, "c_ratio": c_r / c_f,
                    "rho_l1": float(np.abs(rr - rf).sum() / max(len(rf), 1)),
                    "volume_fom": float(v @ rf / v.sum()), "volume_rom": float(v @ rr / v.sum()),
                    "t_opt_fom_s": t_fom, "t_opt_rom_s": t_rom, "iters_fom": len(hist_f), "iters_rom": len(hist_r),
                    "device": device_name(device)})
    return out
