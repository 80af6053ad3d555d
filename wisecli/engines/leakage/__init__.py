"""`wise leakage`: layer-wise latent information leakage in federated learning, with empirical V-information
probes and Jacobian sensitivity (Mo et al., arXiv 2010.08762; spec /work/shared/specs/leakage.md). The verbs
are in `api`."""
