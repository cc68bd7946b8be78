"""Small synthetic traces for tests that need an op the committed traces do not have."""
from capture.capture import build_signatures
from capture.schema import FORMAT_VERSION, ModuleInfo, OpInfo, TensorMeta, Trace, contiguous_stride, write_trace


class _Raw:
    def __init__(self, op, args, outputs, scope):
        self.op, self.args, self.outputs, self.scope = op, args, outputs, scope


class _Rec:
    def __init__(self):
        self.ops, self.calls = [], []


def unary_trace(model: str, steps: list[tuple[str, list[int]]], path: str) -> Trace:
    """A trace of one-input ops: steps = [(op name, input shape), ...]; each output has the input's shape."""
    rec, tensors, op_index = _Rec(), [], {}
    modules = [ModuleInfo("", "Synthetic")] + [ModuleInfo(f"layer{i}", "Step") for i in range(len(steps))]
    scopes = [[]] + [[0, i + 1] for i in range(len(steps))]
    for i, (op, shape) in enumerate(steps):
        if op not in op_index:
            op_index[op] = len(rec.ops)
            rec.ops.append(OpInfo(op, ["self"], 1, f"{op}(Tensor self) -> Tensor"))
        for kind in ("input" if i == 0 else "activation", "activation"):
            tensors.append(TensorMeta(list(shape), "float32", contiguous_stride(shape), 0, len(tensors), kind, ""))
        rec.calls.append(_Raw(op_index[op], [["T", len(tensors) - 2]], [["T", len(tensors) - 1]], i + 1))
    calls, sigs = build_signatures(rec, tensors)
    header = {"format_version": FORMAT_VERSION, "versions": {}, "call_count": len(calls), "grad_mode": "no_grad",
              "tensor_mode": "real", "via": "eager", "input_shapes": [steps[0][1]],
              "model": {"name": model, "source": "synthetic", "build": "tests/tracekit.py"}}
    trace = Trace(header=header, modules=modules, scopes=scopes, ops=rec.ops, tensors=tensors, calls=calls,
                  signatures=sigs, path=path)
    write_trace(trace, path)
    return trace
