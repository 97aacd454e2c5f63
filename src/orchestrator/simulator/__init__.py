"""The routing simulator: a discrete-event model of the whole path, driving the real routing code."""
