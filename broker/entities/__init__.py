"""NGSI-LD entities at the edge: request bodies to the stored (expanded) form, and back."""
