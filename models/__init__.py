"""Pydantic models shared across the broker and the IoT agents."""
