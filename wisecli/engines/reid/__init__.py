"""Vehicle re-identification with viewpoint-aware channel-wise attention (VCAM; Chen et al., CVPRW 2020).

The command imports only `api`; the other modules are the method's parts (model, vcam, data, sampler, losses,
metrics, rerank, synthetic, reference_numpy).
"""
