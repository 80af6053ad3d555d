"""`wise text-vae`: TWR-VAE, the timestep-wise regularised text VAE (Li et al., COLING 2020)."""
