"""`wise translate`: layer-wise multi-view neural machine translation (Wang et al., COLING 2020)."""
