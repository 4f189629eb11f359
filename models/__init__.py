"""PyTorch baselines, training, evaluation, benchmark cards and reproduction."""
