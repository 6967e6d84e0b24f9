"""The distributed tests' processes: :mod:`loadtest.cluster` (shared with ``quotegate bench
distributed``)."""

from loadtest.cluster import BOB_KEY, KEY, ROOT, Cluster, Node, accounts_json

__all__ = ["BOB_KEY", "KEY", "ROOT", "Cluster", "Node", "accounts_json"]
