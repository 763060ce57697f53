"""Bring the image's project files into the workspace volume the workers share.

    python sync_workspace.py SOURCE WORKSPACE

Only files whose bytes differ are copied, each through a temp name and a rename, so a flow
running from the workspace never reads half of a file, and a restart with the same image
rewrites nothing. The workspace's own state (data/, models/, reports/, dvc.lock, .dvc/cache,
.run/) is not in the image (see .dockerignore) and is left as it is. Files the image no longer
has are left too: remove them by hand, or start from a new volume.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
from pathlib import Path

from driftloop.io import write_file


def sync(source: Path, workspace: Path) -> list[Path]:
    """Copy every file of `source` that is missing or different in `workspace`; return them."""
    if not source.is_dir():
        raise SystemExit(f"sync_workspace: {source} is not a folder: the image should hold the "
                         "project there (docker/Dockerfile copies it); rebuild the image")
    changed = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
        target = workspace / path.relative_to(source)
        if target.is_file() and filecmp.cmp(path, target, shallow=False):
            continue
        write_file(target, lambda tmp, path=path: shutil.copyfile(path, tmp))
        target.chmod(path.stat().st_mode & 0o777 | 0o200)  # keep the exec bits; owner may write
        changed.append(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python sync_workspace.py SOURCE WORKSPACE", file=sys.stderr)
        return 2
    changed = sync(Path(args[0]), Path(args[1]))
    print(f"sync_workspace: {len(changed)} file(s) of {args[0]} updated in {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
