"""Model inputs: what a registry entry says to feed a forward, and the seeded tensors made from it.

An entry's ``inputs`` is a list; each item is a shape (``[1, 3, 224, 224]``: a positional float
input in the entry's dtype) or a table naming and typing one input, for models whose forward takes
keyword arguments (Hugging Face ``pixel_values``, ``input_ids``, ``attention_mask``)::

    inputs = [{name = "input_ids", shape = [1, 16], dtype = "int64", low = 0, high = 1000},
              {name = "attention_mask", shape = [1, 16], dtype = "int64", low = 1, high = 2}]

Parsing needs no torch; making tensors does (imported in the functions).
"""
from __future__ import annotations

from dataclasses import dataclass

INPUT_DTYPES = ("float32", "bfloat16", "float16", "int64", "int32", "bool")
_TABLE_KEYS = ("name", "shape", "dtype", "low", "high")


class InputError(ValueError):
    """An input spec that cannot be used; the message says which part and what is expected."""


@dataclass(kw_only=True)
class InputSpec:
    """One input of a forward: positional when ``name`` is empty, else passed as ``name=``."""
    shape: list[int]
    name: str = ""
    dtype: str = ""          # "" = the entry's dtype
    low: float | None = None   # values uniform in [low, high): floats default [0, 1), ints [0, 2)
    high: float | None = None

    def is_plain(self) -> bool:
        """A bare shape: positional, in the entry's dtype, default range."""
        return not self.name and not self.dtype and self.low is None and self.high is None

    def to_toml(self):
        """As the registry writes it (and trace headers record it): a shape, or a table."""
        if self.is_plain():
            return list(self.shape)
        return {k: v for k, v in (("name", self.name), ("shape", list(self.shape)), ("dtype", self.dtype),
                                  ("low", self.low), ("high", self.high)) if v not in ("", None)}


def _is_shape(s) -> bool:
    return isinstance(s, list) and bool(s) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s)


def parse_input(raw, position: int) -> InputSpec:
    """One ``inputs`` item (a shape or a table) as an InputSpec; InputError says what is wrong."""
    where = f"input {position + 1}"
    if _is_shape(raw):
        return InputSpec(shape=raw)
    if not isinstance(raw, dict):
        raise InputError(f"{where} must be a shape of positive integers, e.g. [1, 3, 640, 640], or a table "
                         f"{{name, shape, dtype, low, high}}")
    unknown = sorted(set(raw) - set(_TABLE_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_TABLE_KEYS)})")
    if not _is_shape(raw.get("shape")):
        raise InputError(f"{where}: 'shape' must be a list of positive integers, e.g. [1, 16]")
    name, dtype = raw.get("name", ""), raw.get("dtype", "")
    if not isinstance(name, str) or (name and not name.isidentifier()):
        raise InputError(f"{where}: 'name' {name!r} must be a keyword argument name of forward")
    if dtype and dtype not in INPUT_DTYPES:
        raise InputError(f"{where}: 'dtype' {dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
    for k in ("low", "high"):
        if k in raw and (not isinstance(raw[k], (int, float)) or isinstance(raw[k], bool)):
            raise InputError(f"{where}: {k!r} must be a number")
    low, high = raw.get("low"), raw.get("high")
    if low is not None and high is not None and not low < high:
        raise InputError(f"{where}: 'low' {low} must be below 'high' {high}")
    return InputSpec(shape=raw["shape"], name=name, dtype=dtype, low=low, high=high)


def parse_inputs(raw) -> list[InputSpec]:
    """An entry's whole ``inputs`` list; positional inputs come before named ones."""
    if not isinstance(raw, list) or not raw:
        raise InputError("must be a non-empty list of shapes, e.g. [[1, 3, 640, 640]], or of input tables")
    specs = [parse_input(item, i) for i, item in enumerate(raw)]
    names = [s.name for s in specs if s.name]
    if len(set(names)) != len(names):
        raise InputError(f"input name {next(n for n in names if names.count(n) > 1)!r} appears twice")
    if any(not later.name and earlier.name for i, earlier in enumerate(specs) for later in specs[i + 1:]):
        raise InputError("a positional input (a bare shape) cannot follow a named one")
    return specs


def with_shapes(specs: list[InputSpec], shapes: list[list[int]] | None) -> list[InputSpec]:
    """The specs with their shapes replaced in order (``--input``); extra shapes are plain inputs."""
    if not shapes:
        return specs
    out = [InputSpec(shape=s, name=sp.name, dtype=sp.dtype, low=sp.low, high=sp.high)
           for sp, s in zip(specs, shapes)]
    return out + [InputSpec(shape=s) for s in shapes[len(specs):]]


# ---------------------------------------------------------------------------------------------
# Tensors (torch needed from here on)

def make_example(specs: list[InputSpec], *, dtype: str, seed: int, fake_mode=None,
                 empty: bool = False) -> tuple[list, dict]:
    """Seeded random (args, kwargs) for the specs; empty fake tensors under fake_mode, empty real
    ones with empty (torch.export never reads the values: it traces on fake copies).

    Plain float inputs are ``torch.rand`` from one generator seeded with ``seed``, in order, so an
    entry gets the same tensors run after run.
    """
    import torch  # here, not at the top: registries are read without torch
    gen = torch.Generator().manual_seed(seed)
    args, kwargs = [], {}
    for spec in specs:
        dt = getattr(torch, spec.dtype or dtype)
        if fake_mode is not None:
            with fake_mode:
                x = torch.empty(spec.shape, dtype=dt)
        elif empty:
            x = torch.empty(spec.shape, dtype=dt)
        elif dt.is_floating_point:
            lo = 0.0 if spec.low is None else float(spec.low)
            hi = 1.0 if spec.high is None else float(spec.high)
            x = torch.rand(spec.shape, dtype=dt, generator=gen)
            if (lo, hi) != (0.0, 1.0):
                x = x * (hi - lo) + lo
        else:
            lo = 0 if spec.low is None else int(spec.low)
            hi = 2 if spec.high is None else int(spec.high)
            x = torch.randint(lo, hi, spec.shape, generator=gen).to(dt)
        if spec.name:
            kwargs[spec.name] = x
        else:
            args.append(x)
    return args, kwargs


def as_example(inputs) -> tuple[list, dict]:
    """What a user hands over as a model's inputs, as (args, kwargs).

    Accepts a tensor, a tuple/list of tensors, a dict of keyword inputs, or ``(args, kwargs)``
    (a tuple of a tuple/list and a dict, as ``ExportedProgram.example_inputs`` holds them).
    Raises InputError naming what it got.
    """
    import torch
    if isinstance(inputs, torch.Tensor):
        return [inputs], {}
    if isinstance(inputs, dict):
        return [], dict(inputs)
    if (isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], (tuple, list))
            and isinstance(inputs[1], dict)):
        return list(inputs[0]), dict(inputs[1])
    if isinstance(inputs, (tuple, list)):
        return list(inputs), {}
    raise InputError(f"inputs must be a tensor, a tuple or list of tensors, a dict of keyword inputs or "
                     f"(args, kwargs); got {type(inputs).__name__}")


def example_shapes(args: list, kwargs: dict) -> list[InputSpec]:
    """The specs describing concrete example tensors (for the trace header); non-tensors are skipped."""
    import torch
    specs = [InputSpec(shape=list(x.shape)) for x in args if isinstance(x, torch.Tensor)]
    specs += [InputSpec(shape=list(x.shape), name=k, dtype=str(x.dtype).removeprefix("torch."))
              for k, x in kwargs.items() if isinstance(x, torch.Tensor)]
    return specs
