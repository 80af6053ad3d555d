"""OPTIONAL component of `wise lattice`: the component-wise reduced-order model (CWROM) of McBane & Choi, CMAME 381
(2021) 113813, reconstructed from its lineage (static-condensation reduced-basis elements with port reduction:
Huynh, Knezevic & Patera, ESAIM M2AN 47 (2013) 213; Eftang & Patera, IJNME 96 (2013) 269).

The method is the subject of US patent US11514210B2 (`NOTICE`). Nothing on a default path imports this package:
only `api.py` does, lazily, when the user asks for it (`train`, `run/evaluate --solver sc|cwrom`). It depends on
the independent modules (`geometry`, `fem`, `topopt`), never the reverse, so it can move to its own distribution
unchanged.

Modules: `condensation` (components, archetypes, exact static condensation), `ports` (port modes: rigid + POD,
training), `rom` (online reduced assembly, solve, recovery, sensitivities, evaluation), `library` (the saved
per-port-type library, a `runtime.checkpoints` file loaded with weights_only=True).
"""

from __future__ import annotations

from ..notice import PATENT_NOTE as NOTICE  # the one constant (api prints it without importing us)

__all__ = ["NOTICE"]
