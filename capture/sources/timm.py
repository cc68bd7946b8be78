"""timm: ``build`` is a timm model name (``timm.list_models()``); ``kwargs`` go to create_model."""
from __future__ import annotations

import difflib

from capture.inputs import InputSpec
from capture.sources import bad_entry, register_source


def _default_inputs(entry) -> list[InputSpec]:
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(entry.build)  # the model's own input size, from timm's table (no download)
    return [InputSpec(shape=[1, *(getattr(cfg, "input_size", None) or (3, 224, 224))])]


@register_source("timm", build_help="a timm model name, e.g. resnet18", default_inputs=_default_inputs)
def build_timm(entry):
    """timm.create_model(build, pretrained=False, **kwargs)."""
    import timm
    if not timm.is_model(entry.build):
        close = difflib.get_close_matches(entry.build, timm.list_models(), n=3)
        raise bad_entry(entry, "build", f"timm has no model {entry.build!r}"
                                        + (f"; e.g. {', '.join(close)}" if close else " (timm.list_models() lists them)"))
    return timm.create_model(entry.build, pretrained=False, **entry.kwargs)
