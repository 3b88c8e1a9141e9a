"""Pure-JAX codec proxy: scale-space flow + hyperprior, aligned to a target codec (paper 004)."""
