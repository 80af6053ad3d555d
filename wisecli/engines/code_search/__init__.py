"""wise code-search: COSEA convolutional code search with layer-wise attention."""
