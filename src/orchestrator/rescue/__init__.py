"""Stranded-work rescue: a scheduled function that moves a stalled region queue's backlog elsewhere."""
