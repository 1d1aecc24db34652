"""The version of perfjax (one place: read by the package and by what records it)."""

__version__ = "0.1.0"
