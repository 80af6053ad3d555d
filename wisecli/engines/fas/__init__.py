"""Face anti-spoofing with pixel-wise and pyramid supervision (Yu et al., T-BIOM 2021)."""
