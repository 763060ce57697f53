"""driftloop command line and local service management."""
