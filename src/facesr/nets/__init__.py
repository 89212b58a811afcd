"""Networks (backbones), found by name in ``NETS``: ``@NETS.register("name")`` on a builder
``(config, scale) -> nn.Module`` in its module; the registry imports the modules only on lookup."""

from facesr.registry import Registry

NETS = Registry("network", modules=("facesr.nets.regression",))
