"""Recording: the proxy in front of a real gateway, and what turns its answers into a scenario."""
