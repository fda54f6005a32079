"""NGSI-LD context broker (ETSI GS CIM 009) with FIWARE-compatible IoT agents."""

__version__ = "0.1.0"
