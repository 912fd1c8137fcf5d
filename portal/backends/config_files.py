"""Configuration files that a backend reads from disk: checked with its own tool, then swapped in.

A candidate is written next to the file it replaces (same filesystem, so `os.replace` is atomic),
under a name the backend does not load, checked with the backend's validator (`promtool`,
`amtool`) and only then moved into place. A candidate that fails the check is deleted and the
file in use stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from portal.backends.base import BackendError

TOOL_TIMEOUT_SECONDS = 60
MAX_TOOL_OUTPUT = 4000


def read_text(path: Path) -> str | None:
    """The file's text, or None when there is no such file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def candidate_file(directory: Path, prefix: str, text: str) -> Iterator[Path]:
    """A private temporary file holding `text` in `directory`; removed unless moved away."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".candidate", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it 0600; the backend may run as another user and must read it.
        os.chmod(path, 0o644)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_with_tool(command: list[str], candidate: Path, *, backend: str, shown_as: str) -> None:
    """Run a validator on `candidate`; BackendError(permanent=True) with the tool's own words
    (naming the file `shown_as`) if it refuses.

    A missing tool or one that hangs is a permanent error too: retrying cannot help until the
    platform's operator installs or fixes it.
    """
    try:
        done = subprocess.run(  # noqa: S603 (the command comes from settings, not from users)
            [*command, str(candidate)],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise BackendError(
            f"cannot check {shown_as}: {command[0]} is not installed",
            backend=backend,
            permanent=True,
        ) from None
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"cannot check {shown_as}: {command[0]} did not finish in {TOOL_TIMEOUT_SECONDS} s",
            backend=backend,
            permanent=True,
        ) from None
    if done.returncode != 0:
        output = tool_output(done.stdout + "\n" + done.stderr, candidate, shown_as)
        raise BackendError(f"{shown_as} is invalid: {output}", backend=backend, permanent=True)


# Lines that only say what the tool is doing or that it failed (the reason is elsewhere).
_NOISE = re.compile(r"^(Checking \S+|SUCCESS.*|FAILED:?|amtool: error: failed to validate.*)$")


def tool_output(text: str, candidate: Path, shown_as: str) -> str:
    """A validator's reasons, with the temporary file's name replaced by the one users know."""
    text = text.replace(str(candidate), shown_as).replace(candidate.name, shown_as)
    parts = []
    for line in text.splitlines():
        line = re.sub(r"^Checking \S+\s+", "", line.strip())
        line = re.sub(r"^FAILED:\s*", "", line)
        if line and not _NOISE.match(line):
            parts.append(line)
    cleaned = " ".join(parts)
    return cleaned[:MAX_TOOL_OUTPUT] or "the validator refused it without saying why"
