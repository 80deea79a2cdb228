"""Progress bars for the command line."""

from __future__ import annotations

import sys
from typing import Any


class TqdmProgress:
    """One tqdm bar per stage (parse, fetch, embed)."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit = {"parse": "rec", "fetch": "rec", "apply": "rec", "embed": "chunk"}.get(stage, "it")
            # disable=False: our bars show even where pubmed_rag.logs hides the libraries' bars (TQDM_DISABLE).
            bar = self.bars[stage] = tqdm(desc=stage, total=total, unit=unit, file=sys.stderr, leave=True,
                                          disable=False)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(advance)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
