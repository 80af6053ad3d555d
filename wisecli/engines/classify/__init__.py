"""`wise classify`: image and feature-vector classifiers with LAMBC, the CDB loss, rotation-invariant
convolutions and implicit BNNs (spec /work/shared/specs/classify.md). The verbs are in `api`."""
