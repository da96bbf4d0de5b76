"""Containers and ready-made networks."""
from .sequential import Sequential

__all__ = ["Sequential"]
