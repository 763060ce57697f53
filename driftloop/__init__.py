"""driftloop: the library the stages (`pipelines/`), the flows (`flows/`) and the `driftloop`
command share. It never imports a stage or a flow."""
