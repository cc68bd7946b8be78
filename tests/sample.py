"""The fixed sample of committed traces the tests run on (no torch: both environments use it).

traces/ holds the whole zoo (docs/models.md); tests that read committed traces use this sample so
CI time does not grow with the zoo. The sample covers every source and every task of the zoo with
small models. OPTRACE_TEST_ALL_TRACES=1 makes the same tests use every committed trace instead
(`scripts/check-zoo.sh` runs them that way).
"""
from __future__ import annotations

import glob
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(REPO, "traces")
ALL_TRACES_ENV = "OPTRACE_TEST_ALL_TRACES"

# Registry names whose committed traces the tests use (traces/<name>.msgpack): every source and
# every task of the zoo (tests/capture/test_zoo.py checks it), with small models.
SAMPLE = (
    # torchvision: classification, video
    "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large", "resnet50", "vit_b_16", "r3d_18",
    # timm: classification
    "swin_t", "swin_s", "swin_b_384",
    # ultralytics: detection (one of them at 2176x3840, fake), open-vocabulary detection,
    # instance and semantic segmentation, pose, oriented boxes, depth
    "yolo12x_2176x3840", "yolov8s", "yolov8s_world", "yolov8s_world_1280x800", "yolov8s_worldv2",
    "yolov8n_seg", "yolo26n_sem", "yolov8n_pose", "yolov8n_obb", "yolo26n_depth",
    # transformers: a backbone
    "hf_dinov2",
    # torchvision: optical flow (at 520x960, fake)
    "raft_small",
)
# Tasks of the zoo the sample leaves out, and why (tests/capture/test_zoo.py holds the sample to it).
NOT_SAMPLED: dict[str, str] = {}


def all_traces() -> bool:
    """True when OPTRACE_TEST_ALL_TRACES asks for every committed trace instead of the sample."""
    return os.environ.get(ALL_TRACES_ENV, "") not in ("", "0")


def trace_names() -> list[str]:
    """The model names of the traces under test: the sample, or every committed trace."""
    if all_traces():
        return sorted(os.path.basename(p)[:-len(".msgpack")] for p in glob.glob(os.path.join(TRACES, "*.msgpack")))
    return sorted(SAMPLE)


def trace_files(folder: str = TRACES) -> list[str]:
    """The committed trace files under test (eager traces in traces/, or export ones in traces/export/)."""
    paths = [os.path.join(folder, f"{n}.msgpack") for n in trace_names()]
    return [p for p in paths if os.path.exists(p)] if folder != TRACES or all_traces() else paths
