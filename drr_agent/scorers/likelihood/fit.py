"""The head's two trainers, on standardised input rows against soft labels: logistic
regression (`fit_logistic`) and one layer of tanh units before it (`fit_hidden`).
`LikelihoodHead.fit` standardises the rows and calls one of them."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "HEAD_EPOCHS",
    "HEAD_LEARNING_RATE",
    "HEAD_WEIGHT_DECAY",
    "fit_hidden",
    "fit_logistic",
]

HEAD_WEIGHT_DECAY = 0.1
HEAD_LEARNING_RATE = 1e-2
HEAD_EPOCHS = 200
"""How a head with a hidden layer is fitted (`fit_hidden`): full-batch AdamW at this learning
rate and decoupled weight decay, for this many epochs — chosen on the dev steps of a quickstart
run with 4 and 8 hidden units, 0.01 and 0.1 decay, 200 and 500 epochs (*Making a DM*, "A hidden
layer")."""


def fit_logistic(z: Any, y: Any, l2: float) -> dict[str, Any]:
    """The weights and bias of a logistic regression on standardised rows ``z`` against soft
    labels ``y``: L-BFGS on binary cross-entropy plus ``l2`` times the squared weights."""
    import torch

    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y)
        loss = loss + l2 * (w**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return {"weights": w.detach().tolist(), "bias": float(b.item())}


def fit_hidden(z: Any, y: Any, hidden: int, seed: int) -> dict[str, Any]:
    """The weights of ``hidden`` tanh units and the logistic output over them, fitted on
    standardised rows ``z`` against soft labels ``y`` (`HEAD_EPOCHS`)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(z.shape[1])  # the default initialisation of `torch.nn.Linear`

    def uniform(*shape: int, bound: float) -> Any:
        start = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return start.requires_grad_()

    w1, b1 = uniform(hidden, z.shape[1], bound=bound), uniform(hidden, bound=bound)
    out = 1.0 / math.sqrt(hidden)
    w2, b2 = uniform(hidden, bound=out), uniform(1, bound=out)
    optimizer = torch.optim.AdamW(
        [w1, b1, w2, b2], lr=HEAD_LEARNING_RATE, weight_decay=HEAD_WEIGHT_DECAY
    )
    for _ in range(HEAD_EPOCHS):
        optimizer.zero_grad()
        logits = torch.tanh(z @ w1.T + b1) @ w2 + b2
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
        optimizer.step()
    return {
        "hidden_weights": w1.detach().tolist(),
        "hidden_bias": b1.detach().tolist(),
        "weights": w2.detach().tolist(),
        "bias": float(b2.item()),
    }
