"""The data contract: the suite format, the engine that runs it, and quarantine."""
