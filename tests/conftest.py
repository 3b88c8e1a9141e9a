import os

# Tests run on the CPU with deterministic XLA; set before JAX is imported anywhere.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
