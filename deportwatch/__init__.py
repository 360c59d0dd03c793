"""deportwatch: watch Ukrainian sources, archive what they publish, flag deportation reports."""

__version__ = "0.1.0"
