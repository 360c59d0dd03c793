"""The ``deportwatch`` command: one module per command group, registered in ``app``."""
