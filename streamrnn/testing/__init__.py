"""Slow, obviously correct references and gradient-check helpers, used by the tests.

Nothing in the library imports this package.
"""
