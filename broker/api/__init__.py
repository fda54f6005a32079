"""HTTP handlers: parse and validate the request, call a service, render the answer."""
