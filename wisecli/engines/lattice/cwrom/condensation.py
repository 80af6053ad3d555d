"""Components, archetypes and exact static condensation of a lattice mesh (OPTIONAL, patented method: see NOTICE).

A lattice mesh (`geometry.build_mesh`) is cut into components: every joint (m × m cells) and every strut
(L × m cells, horizontal or vertical). Each component type has one reference stiffness K̂ (E = 1) assembled from
the same Q4 KE as the full-order model, with the component's nodes in a canonical local order (x-major), so that
K(ρ) = Σ_c E(ρ_c) P_c K̂_c P_cᵀ exactly.

Skeleton ([reconstructed], a choice the spec does not make): the nodes shared by two or more components. They are
- port nodes: the m − 1 interior nodes of a strut's end face (shared by the strut and its joint); each strut has
  two ports, of type "x" (a vertical face: horizontal struts) or "y" (a horizontal face: vertical struts), with
  2(m − 1) DOFs;
- vertex nodes: joint corners shared with a strut. A joint corner lies on two faces (and, where two struts leave
  a joint at a right angle, on both struts' ends), so ports that included the corners would overlap and a port
  basis of full dimension would make the reduced system singular. We keep the vertex DOFs as exact (unreduced)
  unknowns instead; the reduced system stays SPD for every n_p and equals static condensation at n_p = 2(m − 1).
Supports and loads sit on joint faces without struts, so Dirichlet DOFs are never port DOFs (they may be vertex
DOFs, which are then dropped).

A component's archetype is its signature: type plus the class of every local DOF (fixed, interior, vertex, port
slot and position). All components of one archetype share Ŝ = K̂_ss − K̂_si K̂_ii⁻¹ K̂_is and the extension
u_i = −K̂_ii⁻¹K̂_is u_s (+ K̂_ii⁻¹ f_i / E for loads); they are batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JOINT, HSTRUT, VSTRUT = "joint", "hstrut", "vstrut"
FIXED, INTERIOR, VERTEX = -1, -2, -3  # local DOF classes; a port DOF is coded slot * 10_000 + position


def type_cells(kind: str, m: int, L: int) -> tuple[int, int]:
    """Cells (along x, along y) of a component type."""
    return {JOINT: (m, m), HSTRUT: (L, m), VSTRUT: (m, L)}[kind]


def reference_stiffness(kind: str, m: int, L: int, nu: float = 0.3) -> np.ndarray:
    """K̂ (E = 1) of a component type on its local nodes (index lx·(hy + 1) + ly, DOFs (x, y) interleaved), assembled
    from the full-order model's KE with the full-order element node order."""
    from ..fem import ke_q4

    hx, hy = type_cells(kind, m, L)
    KE = ke_q4(nu)
    n = (hx + 1) * (hy + 1)
    K = np.zeros((2 * n, 2 * n))
    for cx in range(hx):
        for cy in range(hy):
            nodes = [(cx + dx) * (hy + 1) + (cy + dy) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
            dofs = np.array([[2 * a, 2 * a + 1] for a in nodes]).reshape(-1)
            K[np.ix_(dofs, dofs)] += KE
    return K


@dataclass
class Partition:
    """The components of one lattice mesh and its skeleton."""

    m: int
    L: int
    kinds: list  # per component: joint / hstrut / vstrut
    local_dofs: list  # per component: global DOF of each local DOF (np.int64)
    var: np.ndarray  # per component: design variable (-1: solid)
    ports: list  # per port: (strut component, end 0|1, port type "x"|"y", global DOFs (2(m-1),))
    port_of_dof: dict  # global DOF -> (port id, position)
    vertex_dofs: np.ndarray  # free vertex DOFs (global), in reduced order
    comp_ports: list  # per component: list of (slot, port id)
    n_joints: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def n_comp(self) -> int:
        return len(self.kinds)


def partition(mesh) -> Partition:
    """Cut a lattice mesh into joints and struts, find ports and vertices."""
    m, L = int(mesh.meta["m"]), int(mesh.meta["strut_cells"])
    P = m + L
    s = mesh.element_size
    g = np.rint(mesh.coords / s).astype(np.int64)
    node_at = {(int(a), int(b)): k for k, (a, b) in enumerate(g)}
    joints = np.asarray(mesh.joints)
    kinds, origins = [], []
    for i, j in joints:
        kinds.append(JOINT)
        origins.append((int(i) * P, int(j) * P))
    var_of_strut = np.full(len(mesh.struts), -1, dtype=np.int64)
    var_of_strut[np.asarray(mesh.design_struts, dtype=np.int64)] = np.arange(len(mesh.design_struts))
    comp_var = [-1] * len(joints)
    for k, (a, b) in enumerate(mesh.struts):
        (ia, ja), (ib, jb) = joints[a], joints[b]
        if ia != ib:
            kinds.append(HSTRUT)
            origins.append((int(min(ia, ib)) * P + m, int(ja) * P))
        else:
            kinds.append(VSTRUT)
            origins.append((int(ia) * P, int(min(ja, jb)) * P + m))
        comp_var.append(int(var_of_strut[k]))
    local_dofs, comp_nodes = [], []
    count = np.zeros(len(g), dtype=np.int64)
    for kind, (ox, oy) in zip(kinds, origins):
        hx, hy = type_cells(kind, m, L)
        nodes = np.array([node_at[ox + lx, oy + ly] for lx in range(hx + 1) for ly in range(hy + 1)], dtype=np.int64)
        comp_nodes.append(nodes)
        count[nodes] += 1
        local_dofs.append(np.stack([2 * nodes, 2 * nodes + 1], axis=1).reshape(-1))
    skeleton = count >= 2
    rx, ry = g[:, 0] % P, g[:, 1] % P
    corner = np.isin(rx, (0, m)) & np.isin(ry, (0, m))
    ports, port_of_dof = [], {}
    comp_ports = [[] for _ in kinds]
    nj = len(joints)
    for k, (a, b) in enumerate(mesh.struts):
        c = nj + k
        kind, (ox, oy) = kinds[c], origins[c]
        for end in (0, 1):
            if kind == HSTRUT:
                x = ox + (0 if end == 0 else L)
                pos = [(x, oy + t) for t in range(1, m)]
                ptype = "x"
            else:
                y = oy + (0 if end == 0 else L)
                pos = [(ox + t, y) for t in range(1, m)]
                ptype = "y"
            nodes = np.array([node_at[p] for p in pos], dtype=np.int64)
            dofs = np.stack([2 * nodes, 2 * nodes + 1], axis=1).reshape(-1)
            pid = len(ports)
            ports.append((c, end, ptype, dofs))
            for q, d in enumerate(dofs):
                port_of_dof[int(d)] = (pid, q)
            comp_ports[c].append((end, pid))
            # the joint at this end: the lower (left/bottom) one at end 0, touched on its right/top face (slots:
            # 0 left, 1 right, 2 bottom, 3 top), the upper one at end 1 on its left/bottom face
            lo, hi = sorted((int(a), int(b)), key=lambda v: (int(joints[v][0]), int(joints[v][1])))
            j = lo if end == 0 else hi
            slot = (1 if end == 0 else 0) if kind == HSTRUT else (3 if end == 0 else 2)
            comp_ports[j].append((slot, pid))
    fixed = np.asarray(mesh.fixed, dtype=bool)
    vnodes = np.nonzero(skeleton & corner)[0]
    vdofs = np.stack([2 * vnodes, 2 * vnodes + 1], axis=1).reshape(-1)
    vdofs = vdofs[~fixed[vdofs]]
    assert all(not fixed[d] for p in ports for d in p[3]), "a support on a port (refused by check_lattice)"
    for cp in comp_ports:
        cp.sort()
    return Partition(m=m, L=L, kinds=kinds, local_dofs=local_dofs, var=np.asarray(comp_var, dtype=np.int64),
                     ports=ports, port_of_dof=port_of_dof, vertex_dofs=vdofs, comp_ports=comp_ports, n_joints=nj,
                     meta={"skeleton_nodes": int(skeleton.sum())})


def local_classes(part: Partition, c: int, fixed: np.ndarray, vertex_index: dict) -> np.ndarray:
    """The class of every local DOF of component c: FIXED, INTERIOR, VERTEX or slot·10 000 + port position."""
    slot_of_port = {pid: slot for slot, pid in part.comp_ports[c]}
    out = np.empty(len(part.local_dofs[c]), dtype=np.int64)
    for k, d in enumerate(part.local_dofs[c]):
        d = int(d)
        if fixed[d]:
            out[k] = FIXED
        elif d in part.port_of_dof and part.port_of_dof[d][0] in slot_of_port:
            pid, q = part.port_of_dof[d]
            out[k] = slot_of_port[pid] * 10_000 + q
        elif d in vertex_index:
            out[k] = VERTEX
        else:
            out[k] = INTERIOR
    return out


def condense(K: np.ndarray, classes: np.ndarray):
    """Exact static condensation of K̂ onto its skeleton DOFs (ports and vertices, local order): (Ŝ, extension
    −K̂_ii⁻¹K̂_is, K̂_ii⁻¹, skeleton local indices, interior local indices)."""
    import scipy.linalg as sla

    sk = np.nonzero((classes >= 0) | (classes == VERTEX))[0]
    ii = np.nonzero(classes == INTERIOR)[0]
    Kss, Ksi, Kii = K[np.ix_(sk, sk)], K[np.ix_(sk, ii)], K[np.ix_(ii, ii)]
    if len(ii):
        cf = sla.cho_factor(Kii)
        ext = -sla.cho_solve(cf, Ksi.T)
        kinv = sla.cho_solve(cf, np.eye(len(ii)))
        S = Kss + Ksi @ ext
    else:
        ext, kinv, S = np.zeros((0, len(sk))), np.zeros((0, 0)), Kss.copy()
    return 0.5 * (S + S.T), ext, kinv, sk, ii
