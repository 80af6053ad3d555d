"""wise explain: RISE and MC-RISE colour-wise saliency for black-box classifiers."""
