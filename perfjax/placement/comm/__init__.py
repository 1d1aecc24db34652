"""Communication: platforms (devices and the links between them), transfer and collective costs,
and the collective model fitted on XLA's measured tables."""
