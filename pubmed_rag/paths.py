"""The one place that knows where the project's folders are: the models shipped in the package, the checkout's root
and the shared data beside it.

The shared data (``../shared/data`` next to the clone) feeds evaluation, training and benchmarks; answering and
checking never need it. Paths are resolved from this file, not from the working directory, so ``pubmed-rag eval``
and the benchmarks work from any folder.
"""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"  # package data: in the wheel, and in a checkout
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
