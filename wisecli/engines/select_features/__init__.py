"""`wise select-features`: embedded deep feature selection with the FM-module.

Liao, Latty, Yang, "Feature Selection Using Batch-Wise Attenuation and Feature Mask Normalization",
IJCNN 2021 (arXiv 2010.13631). The command imports `api` only.
"""
