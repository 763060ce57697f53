"""driftloop pipeline stages: each module is a pure core, a `run(params)` I/O edge and a CLI."""
