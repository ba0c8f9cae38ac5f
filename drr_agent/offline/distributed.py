"""`drr train` under a launcher: which process this is, and what only one of them does.

``torchrun --nproc-per-node N -m drr_agent train ...`` (or ``accelerate launch``) starts N
copies of the same command. Hugging Face's Trainer trains them as one DDP job — gloo on CPU,
NCCL on GPUs — on a 1/N share of each batch; everything that *writes* (the DM folder, its
card, the likelihood head, the reports) happens once, on rank 0, and every process returns
rank 0's result. Without a launcher this is one process and every call here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Processes"]


@dataclass(frozen=True)
class Processes:
    """This process's place in the job (``RANK`` / ``WORLD_SIZE``, as launchers set them)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Processes:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self) -> None:
        """Join the process group (gloo on CPU, NCCL with CUDA); Trainer then reuses it."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")

    def wait_all(self) -> None:
        """Return once every process got here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def share(self, value: T | None) -> T:
        """Rank 0's ``value``, on every process (the others pass ``None``)."""
        if not self.distributed:
            return value  # type: ignore[return-value]
        import torch.distributed as dist

        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def run_on_main(self, fn: Any) -> Any:
        """``fn()`` on rank 0 only; its result (or its failure, re-raised) on every process,
        so no process waits forever on a rank 0 that failed."""
        if not self.distributed:
            return fn()
        outcome: tuple[Any, str | None] | None = None
        if self.is_main:
            try:
                outcome = (fn(), None)
            except Exception as exc:
                outcome = (None, f"{type(exc).__name__}: {exc}")
                self.share(outcome)
                raise
        value, error = self.share(outcome)
        if error is not None:
            raise RuntimeError(f"rank 0 failed: {error}")
        return value
