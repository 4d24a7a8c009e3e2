"""IVR: what a caller hears and presses before reaching an agent."""
