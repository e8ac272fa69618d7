"""Adapters to other libraries, installed as ``streamrnn.adapters``.

Each module imports its library lazily: ``streamrnn.adapters.river`` (river estimators),
``streamrnn.adapters.torch`` (PyTorch weight interop), ``streamrnn.adapters.flink``
(per-key models in Apache Flink's keyed state, through PyFlink).
"""
