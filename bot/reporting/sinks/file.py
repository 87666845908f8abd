"""The ``file`` report sink: ``<directory>/<yyyy-mm-dd>-<owner>.json`` and ``.md``, atomically."""
from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional

from bot.reporting.digest_format import DIGEST_KIND, digest_markdown, redact_words
from bot.reporting.sinks.base import ReportSink, ReportSinkError


def safe_name(owner: str) -> str:
    """An owner as a file name part (``team e-mail`` → ``team_e-mail``)."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", owner).strip("._") or "owner"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


class FileSink(ReportSink):
    """Writes each owner's digest as JSON and Markdown into ``directory``."""

    type_name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> "FileSink":
        unknown = set(options) - {"directory"}
        if unknown:
            raise ReportSinkError(f"file sink: unknown option(s) {sorted(unknown)}; known: ['directory']")
        directory = options.get("directory", "var/digests")
        if not isinstance(directory, str) or not directory.strip():
            raise ReportSinkError("file sink: 'directory' must be a folder path")
        return cls(Path(directory))

    def paths(self, digest: Dict[str, Any]) -> List[Path]:
        stem = f"{digest['date']}-{safe_name(str(digest['owner']))}"
        return [self.directory / f"{stem}.json", self.directory / f"{stem}.md"]

    async def deliver(self, digest: Dict[str, Any]) -> None:
        json_path, md_path = self.paths(digest)
        await asyncio.get_running_loop().run_in_executor(None, write_digest, digest, json_path, md_path)

    async def erase_comments(self, contact_ids: Collection[int], texts: Collection[str] = ()) -> Optional[int]:
        """Rewrite (atomically) each digest in ``directory`` that quotes these contacts' comments,
        its ``.md`` too; how many were rewritten. Files that are not digests are left alone."""
        def rewrite() -> int:
            if not self.directory.is_dir():
                return 0
            changed = 0
            for json_path in sorted(self.directory.glob("*.json")):
                try:
                    digest = json.loads(json_path.read_text(encoding="utf-8"))
                except ValueError:
                    continue  # not JSON: not a digest of ours
                if not isinstance(digest, dict) or digest.get("kind") != DIGEST_KIND:
                    continue
                if not redact_words(digest, contact_ids, texts):
                    continue
                md_path = json_path.with_suffix(".md")
                write_digest(digest, json_path, md_path if md_path.exists() else None)
                changed += 1
            return changed

        return await asyncio.get_running_loop().run_in_executor(None, rewrite)

    def describe(self) -> str:
        return f"file:{self.directory}"


def write_digest(digest: Dict[str, Any], json_path: Path, md_path: Optional[Path]) -> None:
    """Write ``digest`` as JSON and (unless ``md_path`` is None) as Markdown, each atomically."""
    write_atomically(json_path, json.dumps(digest, indent=2, ensure_ascii=False) + "\n")
    if md_path is not None:
        write_atomically(md_path, digest_markdown(digest))
