"""Storage: one async interface, implemented on MongoDB and on an embedded SQLite file."""

from .base import Store

__all__ = ["Store"]
