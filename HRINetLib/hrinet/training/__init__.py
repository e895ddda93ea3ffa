"""Training and adaptation of the learned models: samplers, the trainer, losses, checkpoints.

:mod:`hrinet.training.options` is torch-free (the command line builds its parser from it); the
rest needs torch."""
