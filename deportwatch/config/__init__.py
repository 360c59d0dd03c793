"""The base layer: settings, the sources and keywords files, and the error types.

Every other layer may import it; it imports none of them."""
