"""One long-lived `dvc` for the DVC commands of one flow run, one command after another.

A `dvc` process spends about 0.5 s starting (Python, DVC's imports, its config) before it does
anything; a train flow runs seven DVC commands (a `dvc repro` per stage, then `dvc push`).
Here each command is `dvc.cli.main(args)`, which is what the `dvc` script runs, so it behaves
as `dvc <args>` in a shell does: the same repository lock, output and exit code, and a fresh
`Repo` per command. Only the start is shared.

Protocol (flows/common.py's DvcSession speaks it): one JSON object per line on stdin,
`{"args": [...], "env": {...}}` (the command's whole environment: a stage DVC starts inherits
it); the command's output, and its stage's, on stdout; then the line `<marker> <exit code>`,
with the marker given as the only argument. End of stdin ends the process.

It imports nothing of driftloop's, so it runs from its own file.
"""

from __future__ import annotations

import json
import os
import sys


def serve(marker: str) -> None:
    # the stages DVC starts inherit stdin: they get /dev/null, not the next request
    requests = os.fdopen(os.dup(0), "r")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)  # DVC's lines in order with its stage's

    from dvc.cli import main

    for line in requests:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            code = main(request["args"])
        except SystemExit as exc:  # `--help`, `--version`
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stderr.flush()
        print(f"{marker} {code}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
