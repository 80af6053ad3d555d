"""Shared models and layers (DESIGN.md rule 5): the classifier zoo (`zoo`: ARCHS, build, load_classifier), the
rotation-invariant convolutions (`radial`) and the implicit-BNN layers (`implicit`). Engines import these, never
`engines.classify`."""

from .implicit import ImplicitLayer, convert_to_implicit, implicit_kl, implicit_parameters
from .radial import DWSepRadialConv2d, RadialConv2d, RotatedRingConv2d
from .zoo import ARCHS, BAYES, build, load_classifier

__all__ = ["ARCHS", "BAYES", "build", "load_classifier", "RotatedRingConv2d", "RadialConv2d", "DWSepRadialConv2d",
           "ImplicitLayer", "convert_to_implicit", "implicit_kl", "implicit_parameters"]
