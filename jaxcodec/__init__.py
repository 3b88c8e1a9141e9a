"""jaxcodec: pure JAX functions for video coding research.

Importing the package is cheap and does not start JAX (the decoder pins its CPU affinity
before JAX initialises); import the submodules you need:
`jaxcodec.frame`, `jaxcodec.config`, `jaxcodec.io`, `jaxcodec.codec`, `jaxcodec.metrics`.
"""

__version__ = "0.1.0"
