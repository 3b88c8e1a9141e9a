"""Deployable codec: bitstream, integer decode path, CLI, standard-codec adapters."""
