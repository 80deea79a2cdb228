"""Terminal noise control: library logging, progress bars and warnings stay quiet unless ``-v`` is given.

Our own progress bars (parse, fetch, embed, evaluation) pass ``disable=False`` and so always show.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Loggers of the libraries we call; their INFO/WARNING chatter (tokenizer length warnings, model loading notes)
# is hidden by default.
LIBRARIES = ("transformers", "sentence_transformers", "huggingface_hub", "accelerate", "torch", "faiss", "gguf",
             "urllib3", "httpx", "filelock", "langchain_core", "langchain_text_splitters")
OUR_PACKAGES = r"(pubmed_rag|ingest|rag|ui|bench)(\.|$)"
# Read once, when the library is imported: set here for libraries that are not imported yet.
BAR_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")


def configure(verbose: bool = False) -> None:
    """Quiet library output (``verbose=False``) or let it through at the libraries' own defaults (``verbose=True``).

    Call it before the libraries are imported: some read their settings from the environment once, at import
    (tqdm's ``TQDM_DISABLE``, which also hides raw tqdm bars such as transformers' GGUF conversion, and
    ``TRANSFORMERS_VERBOSITY``). Libraries already imported are switched directly.
    """
    level = logging.WARNING if verbose else logging.ERROR
    os.environ["TRANSFORMERS_VERBOSITY"] = logging.getLevelName(level).lower()
    for var in BAR_SWITCHES:
        if verbose:
            os.environ.pop(var, None)
        else:
            os.environ[var] = "1"
    with warnings.catch_warnings():
        # huggingface_hub warns when its own environment variable forbids the change; that is fine here.
        warnings.simplefilter("ignore")
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity(level)
            hf_logging.enable_progress_bar() if verbose else hf_logging.disable_progress_bar()
        if "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

            enable_progress_bars() if verbose else disable_progress_bars()
    for name in LIBRARIES:
        if name != "transformers":  # transformers keeps its own handler and level (set above)
            logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    if verbose:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)  # if no handler yet
        logging.getLogger().setLevel(logging.INFO)
        warnings.simplefilter("default")
    else:
        # Warnings raised in any other module are ignored; ours fall through to Python's default filters.
        warnings.filterwarnings("ignore", module=f"(?!{OUR_PACKAGES})")
