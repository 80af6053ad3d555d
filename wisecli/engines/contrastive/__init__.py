"""`wise contrastive`: CLIM contrastive pretraining (see api.py)."""
