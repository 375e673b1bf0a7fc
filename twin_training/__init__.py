"""twin_training package."""
