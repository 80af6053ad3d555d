"""wise sparse-cnn: pixel-wise structured sparse CNNs with run-time density control."""
