"""The model registry: `models.toml` entries found by name and built uniformly with random weights.

Reading the registry needs no torch; building a model does (imported lazily per source).
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import asdict, dataclass, field

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REGISTRY = os.path.join(REPO_ROOT, "models.toml")
SOURCES = ("ultralytics", "timm", "torchvision")
CAPTURE_MODES = ("real", "fake")
DTYPES = ("float32", "bfloat16", "float16")


class RegistryError(ValueError):
    """A bad registry or an unknown model name; one line that says what to do."""


@dataclass(kw_only=True)
class ModelEntry:
    """One models.toml entry: how to build the model and what to feed it."""
    name: str
    source: str
    build: str
    inputs: list[list[int]]
    dtype: str = "float32"
    capture: str = "real"
    seed: int = 0
    cls: str = ""
    kwargs: dict = field(default_factory=dict)
    note: str = ""
    export: str = ""         # "eager-only: <reason>" when torch.export cannot export the model

    def to_dict(self) -> dict:
        """The entry as traces record it: how the model is built (``export`` is not part of that)."""
        d = asdict(self)
        d.pop("export")
        return d


_FIELDS = {"source", "build", "inputs", "dtype", "capture", "seed", "class", "kwargs", "note", "export"}
EAGER_ONLY = "eager-only:"


def _entry(name: str, raw: dict, path: str) -> ModelEntry:
    def bad(fld: str, why: str) -> RegistryError:
        return RegistryError(f"{path}: model {name!r}, field {fld!r}: {why}")

    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: model {name!r} must be a table ([{name}])")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise bad(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for req in ("source", "build", "inputs"):
        if req not in raw:
            raise bad(req, "missing")
    if raw["source"] not in SOURCES:
        raise bad("source", f"{raw['source']!r} is not one of {', '.join(SOURCES)}")
    if not isinstance(raw["build"], str) or not raw["build"]:
        raise bad("build", "must be a non-empty string")
    inputs = raw["inputs"]
    if not (isinstance(inputs, list) and inputs and all(
            isinstance(s, list) and s and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s)
            for s in inputs)):
        raise bad("inputs", "must be a list of shapes of positive integers, e.g. [[1, 3, 640, 640]]")
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
    cls = raw.get("class", "")
    if not isinstance(cls, str) or (cls and raw["source"] != "ultralytics"):
        raise bad("class", "is a string and only for ultralytics entries")
    export = raw.get("export", "")
    if export and not (isinstance(export, str) and export.startswith(EAGER_ONLY)
                       and export[len(EAGER_ONLY):].strip()):
        raise bad("export", f'must be "{EAGER_ONLY} <reason>" (or absent when torch.export works)')
    return ModelEntry(name=name, source=raw["source"], build=raw["build"], inputs=inputs, dtype=dtype,
                      capture=capture, seed=seed, cls=cls, kwargs=kwargs, note=str(raw.get("note", "")),
                      export=export)


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

def isolate_ultralytics() -> str:
    """Point ultralytics' settings/fonts at a project folder; it never touches $HOME or the network."""
    folder = os.environ.get("YOLO_CONFIG_DIR") or os.path.join(REPO_ROOT, ".cache", "ultralytics")
    os.makedirs(folder, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = folder
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return folder


# The builders import their library when called: reading the registry must work without torch.

def _build_ultralytics(entry: ModelEntry):
    isolate_ultralytics()  # before the import: ultralytics reads its settings folder on import
    from ultralytics.nn import tasks
    cls = getattr(tasks, entry.cls or "DetectionModel", None)
    if cls is None:
        raise RegistryError(f"model {entry.name!r}: ultralytics has no model class {entry.cls!r}")
    return cls(entry.build, verbose=False, **entry.kwargs)


def _build_timm(entry: ModelEntry):
    import timm
    return timm.create_model(entry.build, pretrained=False, **entry.kwargs)


def _build_torchvision(entry: ModelEntry):
    import torchvision
    return torchvision.models.get_model(entry.build, weights=None, **entry.kwargs)


BUILDERS = {"ultralytics": _build_ultralytics, "timm": _build_timm, "torchvision": _build_torchvision}


def build_model(entry: ModelEntry):
    """The entry's model in eval mode with seeded random weights, in the entry's dtype."""
    import torch  # here, not at the top: the registry is read in environments without torch
    torch.manual_seed(entry.seed)
    model = BUILDERS[entry.source](entry)
    return model.eval().to(getattr(torch, entry.dtype))
