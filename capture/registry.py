"""The model registry: `models.toml` entries found by name and built uniformly with random weights.

Reading the registry needs no torch; building a model does (imported lazily per source).
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field

from capture.inputs import InputError, InputSpec, parse_inputs
from capture.sources import BuildError, get_source, is_source, source_names
from capture.sources.transformers import isolate_huggingface
from capture.sources.ultralytics import isolate_ultralytics  # noqa: F401  (lived here; still importable)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REGISTRY = os.path.join(REPO_ROOT, "models.toml")
SOURCES = source_names()
CAPTURE_MODES = ("real", "fake")
DTYPES = ("float32", "bfloat16", "float16")
# What a model does (the zoo groups by it; reports read header.model.task). Absent: "unknown".
TASKS = ("classification", "detection", "segmentation", "semantic_segmentation", "pose", "obb", "depth",
         "video", "optical_flow", "backbone", "open_vocabulary_detection")
_FAMILY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class RegistryError(ValueError):
    """A bad registry or an unknown model name; one line that says what to do."""


@dataclass(kw_only=True)
class ModelEntry:
    """One models.toml entry (or an ad hoc ``source:build`` name): how to build the model and what to feed it."""
    name: str
    source: str
    build: str
    inputs: list[list[int]]  # the input shapes; input_specs says more (names, dtypes, ranges) when given
    dtype: str = "float32"
    capture: str = "real"
    seed: int = 0
    cls: str = ""
    kwargs: dict = field(default_factory=dict)
    note: str = ""
    export: str = ""         # "eager-only: <reason>" when torch.export cannot export the model
    path: str = ""           # python entries: a folder put on sys.path, relative to registry_dir
    config: str = ""         # transformers entries: the config class (default: the model class's own)
    input_specs: list[InputSpec] = field(default_factory=list)  # one per input; [] = plain shapes
    registry_dir: str = ""   # the folder of the registry file the entry came from (not recorded)
    task: str = ""           # one of TASKS ("" = not given: reports say "unknown")
    family: str = ""         # the architecture family, e.g. "resnet", "yolov8", "vit"
    skip: str = ""           # why this model cannot be built or traced here ("" = it can)

    def specs(self) -> list[InputSpec]:
        """One InputSpec per input (plain positional ones when the entry gave bare shapes)."""
        return self.input_specs or [InputSpec(shape=s) for s in self.inputs]

    def to_dict(self) -> dict:
        """The entry as traces record it: how the model is built (``export`` is not part of that).

        Fields added after format version 1 traces were written appear only when set, so a
        committed trace of an older entry still matches a fresh capture.
        """
        d = {"name": self.name, "source": self.source, "build": self.build,
             "inputs": [s.to_toml() for s in self.specs()], "dtype": self.dtype, "capture": self.capture,
             "seed": self.seed, "cls": self.cls, "kwargs": self.kwargs, "note": self.note}
        d.update({k: v for k, v in (("path", self.path), ("config", self.config), ("task", self.task),
                                    ("family", self.family)) if v})
        return d


_COMMON_FIELDS = {"source", "build", "inputs", "dtype", "capture", "seed", "kwargs", "note", "export",
                  "task", "family", "skip"}
_SOURCE_FIELDS = {"class": "ultralytics", "path": "python", "config": "transformers"}
_FIELDS = _COMMON_FIELDS | set(_SOURCE_FIELDS)
EAGER_ONLY = "eager-only:"


def _entry(name: str, raw: dict, path: str) -> ModelEntry:
    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{path}: model {name!r}, field {fld!r}: {why}")

    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: model {name!r} must be a table ([{name}])")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise bad(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for req in ("source", "build"):
        if req not in raw:
            raise bad(req, "missing")
    if not is_source(raw["source"]):
        raise bad("source", f"{raw['source']!r} is not one of {', '.join(SOURCES)}")
    source = get_source(raw["source"])
    if not isinstance(raw["build"], str) or not raw["build"]:
        raise bad("build", f"must be a non-empty string: {source.build_help}")
    for fld, owner in _SOURCE_FIELDS.items():
        if fld in raw and (not isinstance(raw[fld], str) or raw["source"] != owner):
            raise bad(fld, f"is a string and only for {owner} entries")
    if "inputs" not in raw and not source.inputs_optional:
        raise bad("inputs", "missing (the input shapes of one forward, e.g. [[1, 3, 640, 640]])")
    try:
        specs = parse_inputs(raw["inputs"]) if "inputs" in raw else []
    except InputError as e:
        raise bad("inputs", str(e)) from None
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPES:
        raise bad("dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    capture = raw.get("capture", "real")
    if capture not in CAPTURE_MODES:
        raise bad("capture", f"{capture!r} is not one of {', '.join(CAPTURE_MODES)}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise bad("seed", "must be an integer")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise bad("kwargs", "must be a table")
    export = raw.get("export", "")
    if export and not (isinstance(export, str) and export.startswith(EAGER_ONLY)
                       and export[len(EAGER_ONLY):].strip()):
        raise bad("export", f'must be "{EAGER_ONLY} <reason>" (or absent when torch.export works)')
    task, family, skip = _zoo_fields(raw, bad)
    plain = all(s.is_plain() for s in specs)
    return ModelEntry(task=task, family=family, skip=skip, name=name, source=raw["source"], build=raw["build"], inputs=[s.shape for s in specs],
                      dtype=dtype, capture=capture, seed=seed, cls=raw.get("class", ""), kwargs=kwargs,
                      note=str(raw.get("note", "")), export=export, path=raw.get("path", ""),
                      config=raw.get("config", ""), input_specs=[] if plain else specs,
                      registry_dir=os.path.dirname(os.path.abspath(path)))


def _zoo_fields(raw: dict, bad) -> tuple[str, str, str]:
    """(task, family, skip) of a raw entry, each checked; bad(field, why) makes the error."""
    task = raw.get("task", "")
    if task not in ("",) + TASKS:
        close = difflib.get_close_matches(str(task), TASKS, n=1)
        raise bad("task", f"{task!r} is not a task" + (f" (did you mean {close[0]!r}?)" if close else "")
                  + f"; one of {', '.join(TASKS)}")
    family = raw.get("family", "")
    if not isinstance(family, str) or (family and not set(family) <= _FAMILY_CHARS):
        raise bad("family", f"{family!r} must be a lower-case name of letters, digits, _ . - (e.g. resnet, yolov8)")
    if "family" in raw and not family:
        raise bad("family", "is empty; name the architecture family (e.g. resnet, yolov8) or leave it out")
    skip = raw.get("skip", "")
    if not isinstance(skip, str) or ("skip" in raw and not skip.strip()):
        raise bad("skip", 'must be the reason the model cannot be traced here, e.g. "needs a CUDA kernel"')
    return task, family, skip.strip()


def eager_only_reason(entry: ModelEntry) -> str:
    """The registry's reason this model is not exported ("" when it is exported)."""
    return entry.export.removeprefix(EAGER_ONLY).strip() if entry.export else ""


def load_registry(path: str = DEFAULT_REGISTRY) -> dict[str, ModelEntry]:
    """Parse and validate models.toml; raises RegistryError naming the entry and field."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise RegistryError(f"{path}: cannot read the model registry: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: not valid TOML: {e}") from None
    return {name: _entry(name, raw, path) for name, raw in doc.items()}


def lookup(registry: dict[str, ModelEntry], name: str) -> ModelEntry:
    """The entry called name, or a RegistryError listing the closest names."""
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise RegistryError(f"unknown model {name!r}{hint} (trace-model --list shows all)")


def parse_shape(text: str) -> list[int]:
    """'1x3x1280x800' (or '1,3,1280,800') -> [1, 3, 1280, 800]; a RegistryError names the first bad part."""
    parts = text.lower().replace(",", "x").split("x")
    for i, part in enumerate(parts, 1):
        if not (part.isascii() and part.isdigit() and int(part) > 0):
            why = "is empty" if not part else f"is {part!r}, not a positive integer"
            raise RegistryError(f"{text!r} is not a shape like 1x3x640x640: dimension {i} {why}")
    return [int(p) for p in parts]


# ---------------------------------------------------------------------------------------------
# Building models (torch needed from here on)

def adhoc_entry(text: str, *, kwargs: dict | None = None) -> ModelEntry:
    """An entry for an ad hoc ``source:build`` name (``timm:resnet18``, ``transformers:Dinov2Model``).

    Its inputs are left empty: the source's defaults fill them at build time unless --input gives
    them. kwargs go where an entry's ``kwargs`` would (the builder, or the transformers config).
    """
    source, sep, build = text.partition(":")
    if not sep or not is_source(source) or not build:
        raise RegistryError(f"{text!r} is not an ad hoc model: write source:build with source one of "
                            f"{', '.join(SOURCES)}, e.g. timm:resnet18")
    stem = build.removesuffix(".yaml").replace(":", "_").replace("/", "_").replace(".", "_")
    return ModelEntry(name=f"{source}_{stem}", source=source, build=build, inputs=[],
                      kwargs=dict(kwargs or {}), path="." if source == "python" else "",
                      registry_dir=os.getcwd())


def is_adhoc(name: str) -> bool:
    """Whether a model name is ad hoc (``source:build``) rather than a registry name."""
    return ":" in name


# ---------------------------------------------------------------------------------------------
# Building models (torch needed from here on; each source imports its library when called)

def build_with_inputs(entry: ModelEntry):
    """(model in eval mode with seeded random weights in the entry's dtype, example inputs or None).

    Example inputs are those a python entry's callable returned; None means make them from the
    entry's input specs (input_specs_for). Raises BuildError naming the entry and field to fix.
    """
    # before torch: timm and transformers import huggingface_hub, which reads HF_HOME and the offline
    # switches once, on import; every source builds offline with caches under the project
    isolate_huggingface()
    import torch  # here, not at the top: the registry is read in environments without torch
    torch.manual_seed(entry.seed)
    made = get_source(entry.source).build(entry)
    model, example = made if isinstance(made, tuple) else (made, None)
    return model.eval().to(getattr(torch, entry.dtype)), example


def build_model(entry: ModelEntry):
    """The entry's model in eval mode with seeded random weights, in the entry's dtype."""
    return build_with_inputs(entry)[0]


def input_specs_for(entry: ModelEntry, shapes: list[list[int]] | None = None) -> list[InputSpec]:
    """The entry's inputs with --input shapes applied; the source's defaults when the entry has none."""
    from capture.inputs import with_shapes
    specs = entry.specs()
    if not specs and not shapes:
        default = get_source(entry.source).default_inputs
        if default is None:
            raise BuildError(f"model {entry.name!r}, field 'inputs': missing; give the input shapes "
                             "(--input 1x3x224x224 or inputs = [[1, 3, 224, 224]])")
        specs = default(entry)
    return with_shapes(specs, shapes)
