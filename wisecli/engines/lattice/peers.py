"""The peer's side of the race: scipy `spsolve` (SuperLU, default ordering) on the free DOFs, with the assembly
a top88 Python port does (COO triplets → CSC every solve), on the host CPU."""

from __future__ import annotations

import numpy as np


def scipy_fom(mesh, E: np.ndarray, nu: float = 0.3):
    """(compliance, u) of K(E)u = f by scipy: COO assembly of KE·E_e, free-DOF slicing, `spsolve`."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from .fem import ke_q4

    KE = ke_q4(nu)
    edof = mesh.edof
    rows = np.repeat(edof, 8, axis=1).ravel()
    cols = np.tile(edof, (1, 8)).ravel()
    vals = (E[:, None] * KE.reshape(1, 64)).ravel()
    K = sp.coo_matrix((vals, (rows, cols)), shape=(mesh.n_dof, mesh.n_dof)).tocsc()
    free = np.nonzero(~mesh.fixed)[0]
    u = np.zeros(mesh.n_dof)
    u[free] = spla.spsolve(K[free][:, free], mesh.f[free])
    return float(mesh.f @ u), u
