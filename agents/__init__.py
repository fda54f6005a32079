"""FIWARE-compatible IoT agents: payload codecs, JEXL and the measure to NGSI-LD mapping."""
