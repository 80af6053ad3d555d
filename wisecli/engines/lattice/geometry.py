"""Lattices, their resolved Q4 meshes, supports and loads (no CWROM code).

A lattice is a set of square joints of side w on an integer grid of pitch h, connected by axis-aligned struts
(rectangles (h − w) × w). The mesh is one structured grid of square cells of side s = w/m: a joint is m × m
cells, a strut L × m with L = (h − w)/s (an integer: w/h must make (h − w)/w·m whole). Struts meet joint faces
node for node, so the mesh is conforming.

Choices where the spec is silent ([reconstructed]):
- joint (i, j) occupies the cells [iP, iP + m) × [jP, jP + m), P = m + L (its lower-left corner at (i·h, j·h));
  strut end points in `design.npz` are joint centres (i·h + w/2, j·h + w/2);
- a face load is a uniform traction of the given total force: trapezoid weights over the face's m + 1 nodes;
- the generated cantilever loads the right-column joint at row ⌊n_y/2⌋ (`mid`; the middle for even n_y) or
  row 0 (`bottom`) with (0, −1) and clamps the left faces (x and y) of every left-column joint;
- a custom lattice's `"fixed"` struts are solid (ρ = 1) and are not design variables;
- one design variable per strut (and per joint with `design_joints`); joints are otherwise solid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

FACES = ("left", "right", "bottom", "top")
MAX_ELEMENTS = 20_000_000  # 40 M DOF: beyond the memory of one GPU for this solver
MAX_GRID_CELLS = 200_000_000  # the structured grid the lattice is cut from (one int64 each)


def check_size(nodes_extent: tuple[int, int], n_joints: int, n_struts: int, m: int, L: int) -> None:
    """Refuse, before anything is allocated, a lattice whose mesh would not fit: more than MAX_ELEMENTS elements
    or a bounding grid of more than MAX_GRID_CELLS cells."""
    n_el = n_joints * m * m + n_struts * L * m
    P = m + L
    cells = (nodes_extent[0] * P + m) * (nodes_extent[1] * P + m)
    if n_el > MAX_ELEMENTS or cells > MAX_GRID_CELLS:
        raise InputError(f"the lattice is too large: {n_el:.3g} elements in a {cells:.3g}-cell grid (at most "
                         f"{MAX_ELEMENTS:.0e} elements, {MAX_GRID_CELLS:.0e} cells)",
                         hint="use fewer cells (--nx/--ny) or a coarser --mesh")


@dataclass
class Mesh:
    """A resolved Q4 mesh: node coordinates, element DOF table (counter-clockwise nodes, y up), each element's
    design variable (−1: solid, fixed at ρ = 1), variable volumes, Dirichlet mask and load vector."""

    coords: np.ndarray  # (n_nodes, 2)
    edof: np.ndarray  # (n_el, 8) int64
    var: np.ndarray  # (n_el,) int64, -1 for solid elements
    n_vars: int
    var_volume: np.ndarray  # (n_vars,)
    fixed: np.ndarray  # (n_dof,) bool
    f: np.ndarray  # (n_dof,)
    cells: np.ndarray  # (n_el, 2) int64 grid cell of each element (plots)
    element_size: float = 1.0
    kind: str = "lattice"
    struts: np.ndarray | None = None  # (n_struts, 2) joint ids
    joints: np.ndarray | None = None  # (n_joints, 2) integer grid positions
    strut_ends: np.ndarray | None = None  # (n_struts, 2, 2) joint centres
    design_struts: np.ndarray | None = None  # strut ids that are design variables (in variable order)
    aggregate: np.ndarray | None = None  # (n_nodes,) joint each node belongs to (two-level preconditioner)
    aggregate_centre: np.ndarray | None = None  # (n_joints, 2)
    meta: dict = field(default_factory=dict)

    @property
    def n_dof(self) -> int:
        return int(self.coords.shape[0] * 2)

    @property
    def n_el(self) -> int:
        return int(self.edof.shape[0])


def ground_structure(nx: int, ny: int, *, pitch: float = 1.0, joint_width: float = 0.2, load: str = "mid") -> dict:
    """The spec's n_x × n_y cantilever ground structure as a lattice document (§4 layout)."""
    nodes = [[i, j] for i in range(nx + 1) for j in range(ny + 1)]
    idx = {(i, j): k for k, (i, j) in enumerate(nodes)}
    struts = []
    for i in range(nx + 1):
        for j in range(ny + 1):
            if i < nx:
                struts.append([idx[i, j], idx[i + 1, j]])
            if j < ny:
                struts.append([idx[i, j], idx[i, j + 1]])
    row = ny // 2 if load == "mid" else 0
    return {"pitch": pitch, "joint_width": joint_width, "nodes": nodes, "struts": struts,
            "supports": [{"node": idx[0, j], "face": "left", "dofs": "xy"} for j in range(ny + 1)],
            "loads": [{"node": idx[nx, row], "face": "right", "force": [0.0, -1.0]}], "fixed": []}


def read_lattice(path: Path | str) -> dict:
    """A lattice JSON file (§4), checked (`check_lattice`); a bad file is exit 2 naming it."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--lattice {path}: not a readable JSON lattice ({exc.__class__.__name__})",
                         hint='give {"nodes": [[i, j], ...], "struts": [[a, b], ...], "supports": [...], '
                              '"loads": [...]}') from None
    if not isinstance(doc, dict):
        raise InputError(f"--lattice {path}: the document is not a JSON object", hint="see the README's lattice format")
    check_lattice(doc, where=f"--lattice {path}")
    return doc


def _bad(where: str, what: str, hint: str = "see the README's lattice format") -> InputError:
    return InputError(f"{where}: {what}", hint=hint)


def check_lattice(doc: dict, where: str = "lattice") -> None:
    """Refuse what cannot be a loaded, supported lattice: unknown nodes, non-adjacent or duplicate struts, no
    supports, a support or load on a face that holds a strut, a part not connected to a support."""
    def field(name, parse, default=None):
        try:
            return parse(doc[name]) if name in doc or default is None else default
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(where, f"field {name!r} is missing or malformed ({exc.__class__.__name__}: {exc})") from None

    nodes = field("nodes", lambda v: [tuple(int(x) for x in n) for n in v])
    struts = field("struts", lambda v: [tuple(int(x) for x in s) for s in v])
    supports = field("supports", lambda v: [dict(x) for x in v], [])
    loads = field("loads", lambda v: [dict(x) for x in v], [])
    fixed = field("fixed", lambda v: [int(x) for x in v], [])
    pitch = field("pitch", float, 1.0)
    width = field("joint_width", float, 0.2)
    if not nodes or any(len(n) != 2 for n in nodes):
        raise _bad(where, "nodes must be a non-empty list of [i, j] integer pairs")
    if len(set(nodes)) != len(nodes):
        raise _bad(where, "duplicate node positions")
    if not (math.isfinite(pitch) and pitch > 0 and math.isfinite(width) and 0 < width < 0.5 * pitch):
        raise _bad(where, f"pitch {pitch} / joint_width {width}: need pitch > 0 and 0 < joint_width < pitch/2")
    n = len(nodes)
    seen = set()
    for k, s in enumerate(struts):
        if len(s) != 2 or not all(0 <= v < n for v in s):
            raise _bad(where, f"strut {k} {list(s)} names an unknown node (nodes are 0..{n - 1})")
        (ia, ja), (ib, jb) = nodes[s[0]], nodes[s[1]]
        if abs(ia - ib) + abs(ja - jb) != 1:
            raise _bad(where, f"strut {k} joins non-adjacent nodes {list(nodes[s[0]])} and {list(nodes[s[1]])}",
                       hint="struts join horizontal or vertical grid neighbours")
        key = frozenset(s)
        if key in seen:
            raise _bad(where, f"strut {k} duplicates an earlier strut {sorted(key)}")
        seen.add(key)
    for f in fixed:
        if not 0 <= f < len(struts):
            raise _bad(where, f"fixed strut {f} does not exist")
    if not supports:
        raise _bad(where, "no supports: the structure would float", hint='add {"node": k, "face": "left", "dofs": "xy"}')
    busy = {}
    for a, b in struts:
        (ia, ja), (ib, jb) = nodes[a], nodes[b]
        if ia != ib:
            lo, hi = (a, b) if ia < ib else (b, a)
            busy.setdefault(lo, set()).add("right")
            busy.setdefault(hi, set()).add("left")
        else:
            lo, hi = (a, b) if ja < jb else (b, a)
            busy.setdefault(lo, set()).add("top")
            busy.setdefault(hi, set()).add("bottom")
    for kind, items in (("support", supports), ("load", loads)):
        for it in items:
            try:
                node, face = int(it["node"]), str(it["face"])
            except (KeyError, TypeError, ValueError):
                raise _bad(where, f"a {kind} lacks node or face") from None
            if not 0 <= node < n:
                raise _bad(where, f"{kind} on unknown node {node}")
            if face not in FACES:
                raise _bad(where, f"{kind} face {face!r} is not one of {', '.join(FACES)}")
            if face in busy.get(node, ()):
                raise _bad(where, f"{kind} on face {face} of node {node}, which holds a strut",
                           hint="supports and loads go on free joint faces")
            if kind == "support" and (str(it.get("dofs", "xy")) not in ("x", "y", "xy")):
                raise _bad(where, f"support dofs {it.get('dofs')!r}: use x, y or xy")
            if kind == "load":
                try:
                    force = [float(v) for v in it["force"]]
                except (KeyError, TypeError, ValueError):
                    raise _bad(where, f"load on node {node} lacks a force [fx, fy]") from None
                if len(force) != 2 or not all(math.isfinite(v) for v in force):
                    raise _bad(where, f"load on node {node}: force must be two finite numbers")
    # every part must hang on a support (else K is singular)
    parent = list(range(n))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in struts:
        parent[root(a)] = root(b)
    held = {root(int(s["node"])) for s in supports}
    loose = [k for k in range(n) if root(k) not in held]
    if loose:
        raise _bad(where, f"node {loose[0]} (and {len(loose) - 1} more) is not connected to a support "
                          "(the stiffness matrix would be singular)", hint="connect every part to a support")


def check_mesh(pitch: float, joint_width: float, m: int) -> int:
    """Cells along a strut, L = (h − w)/(w/m); refuses widths that do not give a whole number."""
    if m < 2:
        raise InputError(f"--mesh {m}: need at least 2 elements across a joint", hint="for example --mesh 8")
    if not (math.isfinite(joint_width) and 0 < joint_width < 0.5 * pitch):
        raise InputError(f"--joint-width {joint_width} is outside (0, {0.5 * pitch:g})",
                         hint="the joint width is a fraction of the pitch, for example 0.2")
    L = (pitch - joint_width) / (joint_width / m)
    if not math.isfinite(L) or L > MAX_ELEMENTS:
        raise InputError(f"--joint-width {joint_width} with --pitch {pitch}: a strut would be {L:.3g} elements long",
                         hint="the joint width is a fraction of the pitch, for example 0.2")
    if abs(L - round(L)) > 1e-6 or round(L) < 1:
        raise InputError(f"--joint-width {joint_width} with --mesh {m}: a strut would be {L:.4g} elements long",
                         hint="pick w so that (pitch − w)/w·m is a whole number, e.g. w = 0.2·pitch")
    return int(round(L))


def build_mesh(doc: dict, m: int, *, design_joints: bool = False) -> Mesh:
    """The conforming Q4 mesh of a lattice document at m elements across a joint."""
    pitch, w = float(doc.get("pitch", 1.0)), float(doc.get("joint_width", 0.2))
    L = check_mesh(pitch, w, m)
    P = m + L
    s = w / m
    nodes = np.asarray(doc["nodes"], dtype=np.int64).reshape(-1, 2)
    nodes = nodes - nodes.min(axis=0)
    struts = np.asarray(doc["struts"], dtype=np.int64).reshape(-1, 2)
    fixed_struts = set(int(v) for v in doc.get("fixed", []))
    NX = int(nodes[:, 0].max()) * P + m
    NY = int(nodes[:, 1].max()) * P + m
    owner = np.full((NX, NY), -2, dtype=np.int64)  # -2 empty, -1 solid, >= 0 variable
    design = [k for k in range(len(struts)) if k not in fixed_struts]
    var_of_strut = {k: v for v, k in enumerate(design)}
    n_vars = len(design)
    for k, (a, b) in enumerate(struts):
        (ia, ja), (ib, jb) = nodes[a], nodes[b]
        v = var_of_strut.get(k, -1)
        if ia != ib:
            i0, j0 = min(ia, ib), ja
            owner[i0 * P + m:(i0 + 1) * P, j0 * P:j0 * P + m] = v
        else:
            i0, j0 = ia, min(ja, jb)
            owner[i0 * P:i0 * P + m, j0 * P + m:(j0 + 1) * P] = v
    for k, (i, j) in enumerate(nodes):
        owner[i * P:i * P + m, j * P:j * P + m] = (n_vars + k) if design_joints else -1
    if design_joints:
        n_vars += len(nodes)
    mesh = grid_mesh(owner, s, n_vars)
    # every node belongs to its nearest joint (strut nodes split at mid-length): the aggregates of the two-level
    # preconditioner, whose coarse space is each joint's rigid-body motion
    g = np.rint(mesh.coords / s).astype(np.int64)
    ji = np.clip(np.rint((g - m / 2) / P).astype(np.int64), 0, None)
    joint_at = np.full(tuple(nodes.max(axis=0) + 1), -1, dtype=np.int64)
    joint_at[nodes[:, 0], nodes[:, 1]] = np.arange(len(nodes))
    ji = np.minimum(ji, np.asarray(joint_at.shape) - 1)
    mesh.aggregate = joint_at[ji[:, 0], ji[:, 1]]
    mesh.aggregate_centre = (nodes * P + m / 2) * s
    # supports and loads on joint faces
    fixed = np.zeros(mesh.n_dof, dtype=bool)
    f = np.zeros(mesh.n_dof)
    node_id = mesh.meta.pop("node_id")
    for sup in doc["supports"]:
        ids = node_id[_face(nodes[int(sup["node"])], sup["face"], P, m)]
        d = str(sup.get("dofs", "xy"))
        if "x" in d:
            fixed[2 * ids] = True
        if "y" in d:
            fixed[2 * ids + 1] = True
    weights = np.full(m + 1, 1.0 / m)
    weights[[0, -1]] = 0.5 / m
    for ld in doc.get("loads", []):
        ids = node_id[_face(nodes[int(ld["node"])], ld["face"], P, m)]
        fx, fy = (float(v) for v in ld["force"])
        np.add.at(f, 2 * ids, fx * weights)
        np.add.at(f, 2 * ids + 1, fy * weights)
    centres = nodes * pitch + w / 2
    mesh.fixed, mesh.f = fixed, f
    mesh.kind = "lattice"
    mesh.joints = nodes
    mesh.struts = struts
    mesh.strut_ends = centres[struts]
    mesh.design_struts = np.asarray(design, dtype=np.int64)
    mesh.meta.update(pitch=pitch, joint_width=w, m=m, strut_cells=L, design_joints=design_joints,
                     n_struts=len(struts), n_joints=len(nodes))
    return mesh


def _face(node, face: str, P: int, m: int):
    """Grid-node index pairs (gx, gy) of one joint face."""
    i, j = int(node[0]), int(node[1])
    r = np.arange(m + 1)
    if face == "left":
        return i * P + 0 * r, j * P + r
    if face == "right":
        return i * P + m + 0 * r, j * P + r
    if face == "bottom":
        return i * P + r, j * P + 0 * r
    return i * P + r, j * P + m + 0 * r


def grid_mesh(owner: np.ndarray, s: float, n_vars: int) -> Mesh:
    """Q4 mesh of the cells of a structured grid whose `owner` ≥ −1 (−1 solid, ≥ 0 a variable, −2 empty)."""
    NX, NY = owner.shape
    cx, cy = np.nonzero(owner >= -1)
    corners = [(0, 0), (1, 0), (1, 1), (0, 1)]  # counter-clockwise, y up
    gnode = np.stack([(cx + dx) * (NY + 1) + (cy + dy) for dx, dy in corners], axis=1)
    used, inv = np.unique(gnode, return_inverse=True)
    enode = inv.reshape(gnode.shape)
    node_id = np.full((NX + 1, NY + 1), -1, dtype=np.int64)
    gx, gy = np.divmod(used, NY + 1)
    node_id[gx, gy] = np.arange(len(used))
    coords = np.stack([gx, gy], axis=1).astype(np.float64) * s
    edof = np.stack([2 * enode, 2 * enode + 1], axis=2).reshape(-1, 8).astype(np.int64)
    var = owner[cx, cy].astype(np.int64)
    vol = np.bincount(var[var >= 0], minlength=n_vars).astype(np.float64) * s * s
    n_dof = 2 * len(used)
    return Mesh(coords=coords, edof=edof, var=var, n_vars=n_vars, var_volume=vol, fixed=np.zeros(n_dof, bool),
                f=np.zeros(n_dof), cells=np.stack([cx, cy], axis=1), element_size=s, meta={"node_id": node_id})


def cantilever_top88(nelx: int, nely: int) -> Mesh:
    """The top88 continuum cantilever: nelx × nely unit Q4 cells, one variable per element, left edge clamped,
    a unit downward load at the middle of the right edge (the benchmark's grid)."""
    owner = np.arange(nelx * nely, dtype=np.int64).reshape(nelx, nely)
    mesh = grid_mesh(owner, 1.0, nelx * nely)
    node_id = mesh.meta.pop("node_id")
    left = node_id[0, :]
    mesh.fixed[2 * left] = True
    mesh.fixed[2 * left + 1] = True
    mesh.f[2 * node_id[nelx, nely // 2] + 1] = -1.0
    mesh.kind = "top88"
    mesh.meta.update(nelx=nelx, nely=nely)
    return mesh
