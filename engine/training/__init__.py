"""Training, evaluation and checkpoints (needs torch)."""
