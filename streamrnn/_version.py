"""The library version (kept here so modules can read it without importing the package)."""

__version__ = "0.2.0"
