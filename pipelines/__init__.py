"""The DVC stages of `dvc.yaml`, one module each: a pure core, a `run(params)` I/O edge and a
CLI (`python -m pipelines.<stage>`). A stage imports the `driftloop` library, never another stage."""
