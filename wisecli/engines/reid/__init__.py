"""Vehicle re-identification with viewpoint-aware channel-wise attention (VCAM; Chen et al., CVPRW 2020).

The command imports only `api`. Rooms: `model` (+ `vcam`), `loss`, `data`, `synthetic`, `metrics`, `train`,
`predict` (embedding and the features file), `bench` (our side of the race) and `peers` (the numpy peers),
`plots`; sub-parts: `sampler`, `rerank`, `submit`, `query`, `demo`.
"""
