"""`quiet_transformers`: transformers' own chatter off for a block.

Loading a base, saving the DM and reloading it print warnings and progress bars that say
nothing about *this* run (a freshly initialised head is expected here); `train_dm` turns
them off so what it prints — or, with ``progress=False``, its silence — is its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_transformers"]


@contextmanager
def quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' info/warnings and its progress bars for the block."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
