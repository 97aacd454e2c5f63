"""The GPU inference worker: batched, Spot-safe, exactly-once execution of region-queue requests."""
