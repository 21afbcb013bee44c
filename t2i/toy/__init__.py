"""A compositional text-to-image world small enough to train on a CPU (see ``world``)."""
