"""NGSI-LD context broker (ETSI GS CIM 009) with FIWARE-compatible IoT agents."""

from .native import prefer_fresh

__version__ = "0.1.0"

prefer_fresh()  # before any module imports a compiled module that may be stale (broker/native.py)
