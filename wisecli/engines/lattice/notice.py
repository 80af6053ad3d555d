"""The patent notice of the optional CWROM component (spec §1), one constant. It lives outside `cwrom/` so that
`info`, the README and the default paths can show it without importing the optional subpackage; `cwrom.NOTICE` is
this same constant. Standard library only (no imports at all)."""

PATENT_NOTE = ("The component-wise reduced-order model (CWROM) is the subject of US patent US11514210B2 "
               "(Lawrence Livermore National Security, LLC; listed as active). It is an optional component, never "
               "used by default; its use is the user's responsibility, including any licence they may need. The "
               "full-order FEM and density-based optimisation of this command do not use it.")
