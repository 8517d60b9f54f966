"""Faults: the kinds and what each does, how they are written, when they fire, the resilience report."""
