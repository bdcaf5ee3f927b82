"""Many models of one shape trained as one: the ensemble behind every training run.

An :class:`Ensemble` of S members holds each parameter and buffer of its members stacked on a
leading member axis. Its methods run the members' own methods (``forward``, ``loss``,
``classify``, ``penalty``, ``predict``) on every member at once with :func:`torch.func.vmap`, so
a matrix product of one member becomes one batched product over all of them, and a GPU that one
small model leaves mostly idle does S models' work in about the same time.

Member k is the model it was built from: the same initial values, and, since nothing in a member's
forward pass or loss reads another member's tensors, the same gradients when the ensemble is
trained on the sum of the members' losses (each member's own batch mean). Adam's update is
element-wise, so its stacked state gives each member the trajectory it would have alone. An
ensemble of one calls the model directly (no vmap), with the same arithmetic as the bare model.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

__all__ = ["Ensemble"]


class _Call(nn.Module):
    """Calls any method of ``model``: :func:`torch.func.functional_call` only calls forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, *args: Any) -> Any:
        """Call the wrapped model's ``method`` on ``args``."""
        return getattr(self.model, method)(*args)


def _key(name: str) -> str:
    """A parameter name as a key of the stacked tensors (module paths use dots, keys cannot)."""
    return name.replace(".", "/")


class Ensemble(nn.Module):
    """S models of the same shape with every parameter and buffer stacked on a member axis.

    ``members`` are built models (for example one per seed); their values are copied. The first
    member, kept as :attr:`template`, supplies everything that is not a tensor (horizons,
    engine, stage); set such attributes on the template. Inputs and outputs of the methods carry
    the member axis first: ``forward(inputs)`` takes (S, batch, ...) and gives (S, batch, ...),
    ``loss`` gives one number per member, ``predict(inputs)`` takes inputs shared by all members.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0]
        for other in members[1:]:
            if type(other) is not type(first) or _shapes(other) != _shapes(first):
                raise ValueError(
                    "the members of an ensemble must be models of one class and shape; "
                    f"got {type(first).__name__} and {type(other).__name__} of other shapes"
                )
        # Kept outside the module tree: its own tensors are never used, only its methods.
        self._box = (_Call(copy.deepcopy(first)),)
        self.size = len(members)
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers()]
        self.stacked = nn.ParameterDict()
        for name in self.param_names:
            values = [dict(m.named_parameters())[name].detach() for m in members]
            requires_grad = dict(first.named_parameters())[name].requires_grad
            self.stacked[_key(name)] = nn.Parameter(torch.stack(values), requires_grad)
        for name in self.buffer_names:
            values = [dict(m.named_buffers())[name] for m in members]
            self.register_buffer(_key("buffer." + name), torch.stack(values))

    @property
    def template(self) -> nn.Module:
        """The module whose methods run for every member (its own tensors are never used)."""
        return self._box[0].model

    def train(self, mode: bool = True) -> "Ensemble":
        """Train or eval mode, for the template whose methods run for the members too."""
        self.template.train(mode)
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "Ensemble":
        # .to(), .double(), ...: the template follows, for any tensor it holds outside its state
        self._box[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def _state(self, member: int | None = None) -> dict[str, torch.Tensor]:
        """Every parameter and buffer under the template's names: stacked, or member k's."""
        state = {n: self.stacked[_key(n)] for n in self.param_names}
        state.update({n: getattr(self, _key("buffer." + n)) for n in self.buffer_names})
        if member is not None:
            state = {n: t[member] for n, t in state.items()}
        return {"model." + n: t for n, t in state.items()}

    def member_call(self, member: int, method: str, *args: Any) -> Any:
        """``method(*args)`` of member k alone (no member axis in the arguments)."""
        return functional_call(self._box[0], self._state(member), (method, *args))

    def call(self, method: str, *args: Any, shared: Sequence[bool] = ()) -> Any:
        """``method`` of every member; ``args`` carry the member axis first, except those whose
        position is True in ``shared`` (the same value for every member). The outputs carry the
        member axis first."""
        shared = tuple(shared) + (False,) * (len(args) - len(shared))
        if self.size == 1:
            own = [a if s else a[0] for a, s in zip(args, shared)]
            out = self.member_call(0, method, *own)
            return torch.utils._pytree.tree_map(lambda t: t.unsqueeze(0), out)
        state = self._state()

        def one(member_state: dict[str, torch.Tensor], *member_args: Any) -> Any:
            return functional_call(self._box[0], member_state, (method, *member_args))

        in_dims = (0, *(None if s else 0 for s in shared))
        return vmap(one, in_dims=in_dims, randomness="different")(state, *args)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The members' outputs for their own inputs, (S, batch, ...)."""
        return self.call("forward", inputs)

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each member's data loss on its own batch, shape (S,)."""
        return self.call("loss", outputs, labels)

    def penalty(self) -> torch.Tensor:
        """Each member's regulariser, shape (S,)."""
        return self.call("penalty")

    def classify(self, outputs: torch.Tensor) -> torch.Tensor:
        """Each member's classes of its outputs, (S, batch)."""
        return self.call("classify", outputs)

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Every member's predicted classes of the same ``inputs`` (batch, ...): (S, batch)."""
        return self.call("predict", inputs, shared=(True,))

    def parameters_of(self, names: Sequence[str]) -> list[nn.Parameter]:
        """The stacked parameters with these (member-model) names, for an optimiser."""
        return [self.stacked[_key(name)] for name in names]

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member k's ``state_dict`` as the bare model would have it (cloned)."""
        model = self.template
        state = model.state_dict()
        own = {n[len("model."):]: t.detach() for n, t in self._state(member).items()}
        return {name: own.get(name, value).clone() for name, value in state.items()}

    def member(self, member: int) -> nn.Module:
        """A standalone copy of member k (for certificates, exports and analysis)."""
        model = copy.deepcopy(self.template)
        model.load_state_dict(self.member_state_dict(member))
        return model

    def set_member(self, member: int, state: dict[str, torch.Tensor]) -> None:
        """Write a bare model's ``state_dict`` (the entries that are stacked) into member k."""
        with torch.no_grad():
            for name, value in state.items():
                key = _key(name)
                if key in self.stacked:
                    self.stacked[key][member].copy_(value)
                elif name in self.buffer_names:
                    getattr(self, _key("buffer." + name))[member].copy_(value)


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    tensors: Iterator[tuple[str, torch.Tensor]] = iter(
        [*model.named_parameters(), *model.named_buffers()]
    )
    return [(name, tuple(t.shape)) for name, t in tensors]
