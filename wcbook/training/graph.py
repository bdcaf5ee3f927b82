"""One training step captured as a CUDA graph and replayed for every full batch."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class GraphedStep:
    """``step(images, labels) -> (losses, correct)`` (forward, loss, backward, optimiser)
    captured once and replayed.

    The step reads its batch from two static tensors shaped like ``images`` and ``labels``;
    :meth:`__call__` copies a batch in and replays the graph, which launches the hundreds of small
    kernels of a step at once. Capturing needs a few warm-up steps, which would train the model:
    parameters, buffers and optimiser state are restored afterwards, so that the run is the same
    as an eager one.
    """

    def __init__(
        self,
        step: Step,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        device = labels.device
        self.images, self.labels = images.clone(), labels.clone()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_params = [p.detach().clone() for p in params]
        buffers = list(model.buffers())  # batch-norm statistics move in the warm-up steps too
        saved_buffers = [b.clone() for b in buffers]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items()} for p in params}
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                step(self.images, self.labels)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.losses, self.correct = step(self.images, self.labels)
        with torch.no_grad():
            for p, value in zip(params, saved_params):
                p.copy_(value)
            for b, value in zip(buffers, saved_buffers):
                b.copy_(value)
            for p in params:
                for key, value in optimizer.state[p].items():
                    if key in saved_state[p]:
                        value.copy_(saved_state[p][key])
                    else:
                        value.zero_()  # Adam's moments and step count start at zero

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on one batch; returns the (static) per-member losses and #correct tensors."""
        self.images.copy_(images)
        self.labels.copy_(labels)
        self.graph.replay()
        return self.losses, self.correct
