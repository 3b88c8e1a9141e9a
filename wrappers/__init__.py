"""Neural pre/post-processors trained through the proxy (paper 004)."""
