"""Reads and writes of the archive, each an explicit function over a session, by what they serve."""
