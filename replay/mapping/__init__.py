"""The aten -> ttnn mapping: what a TTNN port would do for one captured signature.

One small function per op family, registered by aten overload name (like torch's
``flop_counter.register_flop_formula``); ``print_table()`` lists them. A mapping function reads the
traced arguments by schema name and returns a ``Replay``: the tensors to create on the device with
the traced shapes, and the ttnn calls with arguments translated from the traced ones (real dims,
real broadcast shapes, real view targets). Ops a port never issues are *skipped* with the reason;
ops without a ttnn equivalent are *unsupported* with a reason a user can act on.

Conventions a port follows, and so does replay:
- float tensors become ``PortSettings.dtype`` (bfloat16 by default), integer tensors int32 (indices
  uint32), bool masks bfloat16 (ttnn has no bool: and/not on them are logical_and/logical_not);
  an integer tensor in a float op (torch's type promotion) is typecast first; layout TILE; inputs in
  DRAM or L1 (``--memory``).
- conv/pool/upsample inputs are held channels-last (``[1, 1, N*H*W, C]`` or ``[N, H, W, C]``), as
  ttnn requires; a port converts once at the model input, not per op.
- conv/linear weights are prepared once by a port: conv weights stay host tensors (ttnn.conv2d
  prepares them), linear weights are pre-transposed to ``[in, out]``.
- in-place aten variants (``add_``, ``relu_``) are replayed out of place: a port writes a new tensor.

Imports neither torch nor ttnn: calls name ttnn functions as strings; ``replay.backends.ttnn_ops``
resolves them.

Modules: ``case`` (the traced signature), ``plan`` (Replay, PortSettings and the Port builder),
``registry`` (register, plan_replay, the table); the op families ``views`` (data movement),
``copies`` (clone, typecast, constants), ``compute`` (conv, pools, norms, matmul), ``attention``
(fused attention as a port writes it: SDPA or its decomposition),
``elementwise``, ``reductions``, ``resample`` (gather, grid_sample, 1-D upsample, linspace), and
``not_replayed`` (skip/unsupported reasons).
"""
from __future__ import annotations

from replay.mapping.case import Case, Traced
from replay.mapping.plan import (DEVICE, FLOAT_DTYPES, INT_DTYPES, MEMORY, TT, Call, InputTensor, NotReplayed,
                                 Port, Ref, Replay, PortSettings, skip, unsupported)
from replay.mapping.registry import (MAPPINGS, NO_MAPPING, Mapping, mapping_table, plan_replay, print_table, register,
                                     register_skip, register_unsupported, table_rows)
# Each family module registers its ops on import.
from replay.mapping import attention, compute, copies, elementwise, not_replayed, reductions, resample, views  # noqa: E402,F401

__all__ = ["Call", "Case", "DEVICE", "FLOAT_DTYPES", "INT_DTYPES", "InputTensor", "MAPPINGS", "MEMORY", "NO_MAPPING",
           "Mapping", "NotReplayed", "Port", "Ref", "Replay", "PortSettings", "TT", "Traced", "mapping_table",
           "plan_replay", "print_table", "register", "register_skip", "register_unsupported", "skip",
           "table_rows", "unsupported"]
