"""Numba kernels: functions over flat arrays only, compiled lazily and cached on disk.

Nothing here imports river, torch or any other part of streamrnn except ``_config``.
"""
