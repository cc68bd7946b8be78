"""The recorder's C accelerator (capture/_accel.c): built here, loaded here, optional everywhere.

The recorder's pure-Python path is the reference; the extension does the same per-call bookkeeping on
the same containers, so a trace is byte-identical either way. ``load()`` returns the built module only
when it was built from the current source (its SOURCE_SHA), makes records with capture.schema's fields,
and OPTRACE_PURE_PYTHON is not set; else
None, and the recorder runs in Python. scripts/setup.sh builds it into the source tree:

    .venv/bin/python -m capture.accel          # build if missing or stale; prints what it did
    .venv/bin/python -m capture.accel --check  # exit 1 unless the built module is current
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_accel.c")
PURE_ENV = "OPTRACE_PURE_PYTHON"


def source_sha() -> str:
    """The first 16 hex digits of the source's sha256: what a current build carries as SOURCE_SHA."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def target() -> Path:
    """Where the built module goes: beside the source, with this interpreter's extension suffix."""
    return SOURCE.with_name("_accel" + sysconfig.get_config_var("EXT_SUFFIX"))


@functools.cache
def load():
    """The built module if it is current and not switched off (OPTRACE_PURE_PYTHON=1), else None."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    try:
        module = importlib.import_module("capture._accel")
    except ImportError:
        return None
    if getattr(module, "SOURCE_SHA", None) != source_sha():
        return None
    # the records it makes without their __init__ must have the fields it sets, in order
    from capture.schema import OpCall, TensorMeta
    if (module.OPCALL_FIELDS, module.META_FIELDS) != (_field_names(OpCall), _field_names(TensorMeta)):
        return None
    return module


def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def build(force: bool = False) -> Path:
    """Compile the source with this interpreter's C compiler and flags into target() (written to a
    temporary file, then renamed); a current build is kept unless force."""
    out = target()
    if not force and is_current():
        return out
    sha = source_sha()
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    ldshared = shlex.split(sysconfig.get_config_var("LDSHARED") or "cc -shared")
    include = sysconfig.get_paths()["include"]
    fd, tmp = tempfile.mkstemp(suffix=out.suffix, prefix=".accel-", dir=out.parent)
    os.close(fd)
    try:
        # LDSHARED names the compiler and -shared; compiling and linking in one step with it
        cmd = [*ldshared, *flags, "-O2", "-Wall", "-Werror", f"-I{include}",
               f'-DOPTRACE_ACCEL_SOURCE_SHA="{sha}"', str(SOURCE), "-o", tmp]
        if ldshared[0] != cc[0]:
            cmd[0] = cc[0]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, out)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"building {SOURCE.name} failed ({' '.join(cmd)}):\n{e.stderr.strip()}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def is_current() -> bool:
    """target() exists and was built from the current source (its bytes carry the source's SOURCE_SHA;
    importing it to ask would pin that file)."""
    out = target()
    return out.exists() and source_sha().encode() in out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    """Build the module (--force: even when current), or --check that it is current."""
    args = sys.argv[1:] if argv is None else argv
    current = is_current()
    if "--check" in args:
        print(f"capture.accel: {target().name} {'is current' if current else 'is missing or stale'}")
        return 0 if current else 1
    current = current and "--force" not in args
    try:
        out = build(force="--force" in args)
    except (RuntimeError, OSError) as e:
        print(f"capture.accel: {e}; the recorder will run in pure Python", file=sys.stderr)
        return 2
    print(f"capture.accel: {out.name} {'is current' if current else 'built'} ({SOURCE.name} {source_sha()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
