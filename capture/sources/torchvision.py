"""torchvision: ``build`` is a torchvision.models builder name; ``kwargs`` go to get_model."""
from __future__ import annotations

from capture.inputs import InputSpec
from capture.sources import bad_entry, register_source


def _default_inputs(entry) -> list[InputSpec]:
    return [InputSpec(shape=[1, 3, 224, 224])]


@register_source("torchvision", build_help="a torchvision.models builder name, e.g. resnet50",
                 default_inputs=_default_inputs)
def build_torchvision(entry):
    """torchvision.models.get_model(build, weights=None, **kwargs); a builder that takes a backbone
    (detection, segmentation) gets weights_backbone=None too, since its default is a download."""
    import inspect
    import torchvision
    if entry.build not in torchvision.models.list_models():
        raise bad_entry(entry, "build", f"torchvision.models has no builder {entry.build!r} "
                                        "(torchvision.models.list_models() lists them)")
    kwargs = dict(entry.kwargs)
    if "weights_backbone" in inspect.signature(torchvision.models.get_model_builder(entry.build)).parameters:
        kwargs.setdefault("weights_backbone", None)
    return torchvision.models.get_model(entry.build, weights=None, **kwargs)
