"""ultralytics: ``build`` is a model YAML shipped with ultralytics; ``class`` picks the model class."""
from __future__ import annotations

import os

from capture.inputs import InputSpec
from capture.sources import bad_entry, register_source

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def isolate_ultralytics() -> str:
    """Point ultralytics' settings/fonts at a project folder; it never touches $HOME or the network."""
    folder = os.environ.get("YOLO_CONFIG_DIR") or os.path.join(REPO_ROOT, ".cache", "ultralytics")
    os.makedirs(folder, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = folder
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return folder


# the model class a YAML's name implies (yolo11n-seg.yaml -> SegmentationModel), when no class is given
_CLASS_BY_SUFFIX = {"-seg": "SegmentationModel", "-pose": "PoseModel", "-cls": "ClassificationModel",
                    "-obb": "OBBModel", "-world": "WorldModel", "-worldv2": "WorldModel"}


def model_class(entry) -> str:
    """The entry's class, or the one its YAML name implies, else DetectionModel."""
    stem = entry.build.removesuffix(".yaml")
    implied = [c for suffix, c in _CLASS_BY_SUFFIX.items() if stem.endswith(suffix)]
    return entry.cls or (implied[0] if implied else "DetectionModel")


def _default_inputs(entry) -> list[InputSpec]:
    return [InputSpec(shape=[1, 3, 640, 640])]


@register_source("ultralytics", build_help="an ultralytics model YAML, e.g. yolov8s.yaml", fields=("class",),
                 default_inputs=_default_inputs)
def build_ultralytics(entry):
    """ultralytics.nn.tasks.<class>(build); the class from the entry or the YAML's name (model_class)."""
    isolate_ultralytics()  # before the import: ultralytics reads its settings folder on import
    from ultralytics.nn import tasks
    cls = getattr(tasks, model_class(entry), None)
    if cls is None:
        raise bad_entry(entry, "class", f"ultralytics has no model class {model_class(entry)!r} "
                                        "(e.g. DetectionModel, SegmentationModel, WorldModel)")
    return cls(entry.build, verbose=False, **entry.kwargs)
