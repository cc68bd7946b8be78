"""transformers: a Hugging Face model class built from its config class, with random weights, offline.

``build`` is the model class (``Dinov2Model``, ``DetrForObjectDetection``), ``config`` its config
class (default: the model class's own ``config_class``) and ``kwargs`` the config's keyword
arguments (``{use_pretrained_backbone = false}``). Nothing is downloaded: the hub's offline
switches are set before transformers is imported, and its cache is the project's .cache/huggingface.
"""
from __future__ import annotations

import os

from capture.inputs import InputSpec
from capture.sources import bad_entry, register_source

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def isolate_huggingface() -> str:
    """Hub offline, caches in the project's .cache/huggingface (never $HOME); call before importing transformers."""
    folder = os.path.join(REPO_ROOT, ".cache", "huggingface")
    os.makedirs(folder, exist_ok=True)
    os.environ["HF_HOME"] = folder
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return folder


def _classes(entry):
    """(model class, config class) named by the entry; BuildError names the field that is wrong."""
    isolate_huggingface()
    import transformers
    model_cls = getattr(transformers, entry.build, None)
    if not isinstance(model_cls, type) or not hasattr(model_cls, "config_class"):
        raise bad_entry(entry, "build", f"transformers {transformers.__version__} has no model class "
                                        f"{entry.build!r} (e.g. Dinov2Model, DetrForObjectDetection)")
    if not entry.config:
        return model_cls, model_cls.config_class
    config_cls = getattr(transformers, entry.config, None)
    if not (isinstance(config_cls, type) and issubclass(config_cls, transformers.PretrainedConfig)):
        raise bad_entry(entry, "config", f"transformers has no config class {entry.config!r} (e.g. Dinov2Config)")
    return model_cls, config_cls


def make_config(entry):
    """The entry's config: the config class built from kwargs (a bad keyword names itself)."""
    _, config_cls = _classes(entry)
    try:
        return config_cls(**entry.kwargs)
    except (TypeError, ValueError) as e:
        raise bad_entry(entry, "kwargs", f"{config_cls.__name__}: {' '.join(str(e).split())[:200]}") from None


def _side(size) -> list[int]:
    size = size if isinstance(size, (list, tuple)) else [size, size]
    return [int(s) for s in size[-2:]]


def _default_inputs(entry) -> list[InputSpec]:
    """What the model's main input needs: pixel_values from the config's image size, input_ids in its vocabulary."""
    model_cls, _ = _classes(entry)
    cfg = make_config(entry)
    main = getattr(model_cls, "main_input_name", "pixel_values")
    if main == "input_ids":
        return [InputSpec(name="input_ids", shape=[1, 16], dtype="int64", low=0,
                          high=int(getattr(cfg, "vocab_size", 1000) or 1000))]
    size = getattr(cfg, "image_size", None) or 224
    return [InputSpec(name=main, shape=[1, int(getattr(cfg, "num_channels", 3) or 3), *_side(size)])]


@register_source("transformers", build_help="a transformers model class, e.g. Dinov2Model", fields=("config",),
                 inputs_optional=True, default_inputs=_default_inputs)
def build_transformers(entry):
    """model_class(config_class(**kwargs)): random weights from the config, no hub access."""
    model_cls, _ = _classes(entry)
    config = make_config(entry)
    try:
        return model_cls(config)
    except Exception as e:  # configs take any keyword; a bad value shows only when the model is built
        raise bad_entry(entry, "kwargs", f"{model_cls.__name__} cannot be built from this config: "
                                         f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
