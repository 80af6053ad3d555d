"""Port modes and their training (OPTIONAL, patented method: see NOTICE).

A port is the m − 1 interior nodes of a strut end face (2(m − 1) DOFs; the face's corner nodes are exact vertex
unknowns, see `condensation`). Its basis Φ (2(m − 1) × 2(m − 1), orthonormal, nested) starts with the 3 rigid-body
modes (x and y translation, rotation about the port centre), followed by POD modes of training traces with their
rigid part removed, computed in the orthogonal complement of the rigid modes so that Φ is a complete basis:
the ROM at n_p = 2(m − 1) is exact static condensation.

Training ([reconstructed] from the spec, §2.4.3): a joint with a random non-empty subset of its four struts,
strut densities log-uniform in `rho_range` (moduli by SIMP, p = 3), random Dirichlet data on every strut's outer
end face: rigid (translations ~ N(0, 1), rotation ~ N(0, 1)·2/w), linear (both components ~ N(0, 1)·2/w along
the face) and a Gaussian random field (squared-exponential, correlation length w/2, unit variance) per
component. The traces on the joint's port(s) are collected per port type ("x": vertical faces, "y": horizontal)
until each type has `samples` traces; each system is one sparse direct solve of the full-order training mesh.
"""

from __future__ import annotations

import math

import numpy as np

PORT_TYPES = ("x", "y")


def port_dim(m: int) -> int:
    """DOFs of a port: 2(m − 1)."""
    return 2 * (m - 1)


def rigid_modes(m: int, ptype: str) -> np.ndarray:
    """The 3 orthonormal rigid-body modes of a port (columns): x, y translation, rotation about its centre."""
    t = np.arange(1, m) - m / 2.0  # position along the face, in cells, from the centre
    R = np.zeros((m - 1, 2, 3))
    R[:, 0, 0] = 1.0
    R[:, 1, 1] = 1.0
    if ptype == "x":  # vertical face: a rotation moves its nodes along x
        R[:, 0, 2] = -t
    else:  # horizontal face: along y
        R[:, 1, 2] = t
    R = R.reshape(-1, 3)
    return R / np.linalg.norm(R, axis=0)


def basis_from_traces(traces: np.ndarray, m: int, ptype: str) -> tuple[np.ndarray, np.ndarray]:
    """Φ = [rigid modes, POD modes of the traces' non-rigid part] (complete, orthonormal) and the POD singular
    values. `traces`: (n_samples, 2(m − 1))."""
    R = rigid_modes(m, ptype)
    d = R.shape[0]
    Q, _ = np.linalg.qr(np.concatenate([R, np.eye(d)], axis=1))
    Q = Q[:, 3:d]  # orthonormal complement of the rigid modes
    X = Q.T @ np.asarray(traces, dtype=np.float64).T  # (d − 3, n)
    U, sv, _ = np.linalg.svd(X, full_matrices=True)
    Phi = np.concatenate([R, Q @ U], axis=1)
    return Phi, np.concatenate([sv, np.zeros(d - 3 - len(sv))])


def _field(rng, t: np.ndarray, w: float) -> np.ndarray:
    """Random Dirichlet data (m + 1 nodes × 2) on a face at positions t (physical, from its centre)."""
    ell = w / 2
    C = np.exp(-0.5 * ((t[:, None] - t[None, :]) / ell) ** 2) + 1e-10 * np.eye(len(t))
    Lc = np.linalg.cholesky(C)
    u = Lc @ rng.standard_normal((len(t), 2))
    u += rng.standard_normal(2)[None, :]  # translations
    u += np.outer(t, rng.standard_normal(2)) * (2 / w)  # linear along the face (includes the rotation's part)
    return u


def train_traces(*, m: int, L: int, joint_width: float, pitch: float, nu: float, samples: int,
                 rho_range: tuple[float, float], seed: int, penal: float = 3.0, emin: float = 1e-6,
                 progress=None) -> dict[str, np.ndarray]:
    """Collect `samples` port traces per port type from random joint-with-struts systems (module docstring)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from .. import fem

    rng = np.random.default_rng(seed)
    arms = {"left": (0, 1), "right": (2, 1), "bottom": (1, 0), "top": (1, 2)}
    KE = fem.ke_q4(nu)
    s = joint_width / m
    t_face = (np.arange(m + 1) - m / 2.0) * s
    meshes = {}
    traces = {p: [] for p in PORT_TYPES}
    lo, hi = math.log(rho_range[0]), math.log(rho_range[1])
    n_sys = 0
    while min(len(v) for v in traces.values()) < samples:
        present = tuple(a for a in arms if rng.random() < 0.6)
        if not present:
            continue
        if present not in meshes:
            meshes[present] = _training_system(present, arms, m, L, pitch, joint_width)
        mesh, strut_el, strut_of, far, near = meshes[present]
        rho = np.exp(rng.uniform(lo, hi, len(present)))
        E = np.ones(mesh.n_el)
        E[strut_el] = (emin + rho ** penal * (1 - emin))[strut_of]
        rows = np.repeat(mesh.edof, 8, axis=1).reshape(-1)
        cols = np.tile(mesh.edof, (1, 8)).reshape(-1)
        K = sp.csr_matrix(((E[:, None] * KE.reshape(1, 64)).reshape(-1), (rows, cols)), shape=(mesh.n_dof, mesh.n_dof))
        g = np.zeros(mesh.n_dof)
        dirichlet = np.zeros(mesh.n_dof, dtype=bool)
        for dofs in far:
            g[dofs] = _field(rng, t_face, joint_width).reshape(-1)
            dirichlet[dofs] = True
        used = np.zeros(mesh.n_dof, dtype=bool)
        used[mesh.edof.reshape(-1)] = True
        free = np.nonzero(used & ~dirichlet)[0]
        u = g.copy()
        u[free] = spla.spsolve(K[free][:, free].tocsc(), -(K[free] @ g))
        for ptype, dofs in near:
            traces[ptype].append(u[dofs])
        n_sys += 1
        if progress is not None:
            progress(n_sys, {p: len(v) for p, v in traces.items()})
    return {p: np.asarray(v[:samples]) for p, v in traces.items()}


def _training_system(present, arms, m, L, pitch, joint_width):
    """The mesh of a joint with the given struts (outer joints removed), the struts' elements, each element's arm,
    the outer end faces (Dirichlet, m + 1 nodes each) and the joint's port DOFs with their types."""
    from .. import geometry
    from .condensation import HSTRUT, partition

    nodes = [[1, 1]] + [list(arms[a]) for a in present]
    struts = [[0, k + 1] for k in range(len(present))]
    doc = {"pitch": pitch, "joint_width": joint_width, "nodes": nodes, "struts": struts, "supports": [], "loads": []}
    mesh = geometry.build_mesh(doc, m)
    part = partition(mesh)
    nj = part.n_joints
    P = m + L
    g = np.rint(mesh.coords / mesh.element_size).astype(np.int64)
    cj = mesh.joints[0]  # the centre joint is the document's first node
    # elements of the outer joints are dropped: the struts' outer ends carry Dirichlet data instead
    cell = np.asarray(mesh.cells)
    jx, jy = cell[:, 0] // P, cell[:, 1] // P
    in_joint = (cell[:, 0] % P < m) & (cell[:, 1] % P < m)
    keep = ~in_joint | ((jx == cj[0]) & (jy == cj[1]))
    strut_el_mask = ~in_joint
    mesh.edof = mesh.edof[keep]
    strut_el = np.nonzero(strut_el_mask[keep])[0]
    # each strut element's arm (strut index) from its position relative to the centre joint
    c = cell[keep][strut_el]
    strut_of = np.empty(len(strut_el), dtype=np.int64)
    for k in range(len(present)):
        comp = nj + k
        lo_x, lo_y = _origin(part, comp, mesh, P, m)
        hx, hy = (L, m) if part.kinds[comp] == HSTRUT else (m, L)
        inside = (c[:, 0] >= lo_x) & (c[:, 0] < lo_x + hx) & (c[:, 1] >= lo_y) & (c[:, 1] < lo_y + hy)
        strut_of[inside] = k
    far, near = [], []
    for comp, end, ptype, dofs in part.ports:
        # the port on the centre joint's face is "near"; the strut's other end face is "far" (Dirichlet)
        if _touches(mesh, dofs, cj, P, m):
            near.append((ptype, dofs))
        else:
            far.append(_face_nodes(part, comp, end, mesh))
    return mesh, strut_el, strut_of, far, near


def _origin(part, comp, mesh, P, m):
    """Lower-left grid cell of a component."""
    nodes = part.local_dofs[comp][0::2] // 2
    g = np.rint(mesh.coords[nodes] / mesh.element_size).astype(np.int64)
    return int(g[:, 0].min()), int(g[:, 1].min())


def _face_nodes(part, comp, end, mesh):
    """All DOFs (m + 1 nodes, corners included) of a strut's end face."""
    from .condensation import HSTRUT

    nodes = part.local_dofs[comp][0::2] // 2
    g = np.rint(mesh.coords[nodes] / mesh.element_size).astype(np.int64)
    axis = 0 if part.kinds[comp] == HSTRUT else 1
    v = g[:, axis].min() if end == 0 else g[:, axis].max()
    sel = nodes[g[:, axis] == v]
    sel = sel[np.argsort(g[g[:, axis] == v][:, 1 - axis])]
    return np.stack([2 * sel, 2 * sel + 1], axis=1).reshape(-1)


def _touches(mesh, dofs, cj, P, m) -> bool:
    """Whether port DOFs lie on the faces of the joint at grid position cj."""
    g = np.rint(mesh.coords[dofs[0::2] // 2] / mesh.element_size).astype(np.int64)
    x0, y0 = cj[0] * P, cj[1] * P
    return bool(np.all((g[:, 0] >= x0) & (g[:, 0] <= x0 + m) & (g[:, 1] >= y0) & (g[:, 1] <= y0 + m)))
