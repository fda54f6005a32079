"""Services: the operations behind the API handlers and the agents (one write path)."""
