import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(REPO, "traces")
if REPO not in sys.path:
    sys.path.insert(0, REPO)
