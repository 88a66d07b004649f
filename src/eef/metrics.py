"""``metrics.jsonl``: one line per finished stage, keyed so that a resumed run never logs a stage twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eef.storage import append_text, ends_with_newline


class MetricsLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._keys = {record["key"] for record in self.records()}

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a kill; its stage logs again when it reruns
        return records

    def log(self, key: str, **data: Any) -> None:
        """Append ``data`` under ``key`` unless that key is already logged."""
        if key in self._keys:
            return
        line = json.dumps({"key": key, "time": round(time.time(), 3), **data}, ensure_ascii=False)
        torn = not ends_with_newline(self.path)
        append_text(self.path, ("\n" if torn else "") + line + "\n")
        self._keys.add(key)
