"""Synthetic traces with real tensor lifetimes, for the in-context tests (no torch: both envs use it)."""
from capture.schema import (FORMAT_VERSION, ModuleInfo, OpCall, OpInfo, Signature, TensorMeta, Trace,
                            contiguous_stride, signature_id, signature_value, write_trace)

SCHEMAS = {  # op -> (arg names, schema)
    "aten.relu.default": (["self"], "relu(Tensor self) -> Tensor"),
    "aten.add.Tensor": (["self", "other", "alpha"], "add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"),
    "aten.view.default": (["self", "size"], "view(Tensor(a) self, SymInt[] size) -> Tensor(a)"),
    "aten.cat.default": (["tensors", "dim"], "cat(Tensor[] tensors, int dim=0) -> Tensor"),
}


def build_trace(model: str, path: str, shapes: dict[str, list[int]], calls: list[tuple], kinds=None) -> Trace:
    """calls: [(op, [arg names of tensors, tuples of them (a tensor list) or literal tagged values], output
    name)]; tensors named in
    shapes; a tensor first seen as an argument is the model input (or kinds[name]). A view output
    shares its input's storage."""
    kinds = kinds or {}
    tensors, index, storage = [], {}, {}
    ops, op_index, out_calls = [], {}, []
    modules = [ModuleInfo("", "Synthetic")] + [ModuleInfo(f"layer{i}", "Step") for i in range(len(calls))]
    scopes = [[]] + [[0, i + 1] for i in range(len(calls))]

    def tensor(name, produced, base=None):
        if name not in index:
            sid = storage[base] if base is not None else len(storage)
            storage[name] = sid
            kind = kinds.get(name, "activation" if produced else "input")
            index[name] = len(tensors)
            tensors.append(TensorMeta(list(shapes[name]), "float32", contiguous_stride(shapes[name]), 0, sid, kind, name))
        return index[name]

    for i, (op, args, out) in enumerate(calls):
        if op not in op_index:
            op_index[op] = len(ops)
            names, schema = SCHEMAS[op]
            ops.append(OpInfo(op, names, 1, schema))
        tagged = [a if isinstance(a, list) else ["list", [["T", tensor(x, False)] for x in a]] if isinstance(a, tuple)
                  else ["T", tensor(a, False)] for a in args]
        base = args[0] if op == "aten.view.default" else None
        out_calls.append(OpCall(i, op_index[op], tagged, [["T", tensor(out, True, base)]], i + 1, -1))
    sigs, by_id = [], {}
    for c in out_calls:
        name = ops[c.op].name
        sargs = [signature_value(v, tensors) for v in c.args]
        sid = signature_id(name, sargs)
        if sid not in by_id:
            by_id[sid] = len(sigs)
            sigs.append(Signature(sid, name, sargs, [signature_value(v, tensors) for v in c.outputs], 0, []))
        s = sigs[by_id[sid]]
        s.count += 1
        s.calls.append(c.index)
        c.signature = by_id[sid]
    header = {"format_version": FORMAT_VERSION, "versions": {}, "call_count": len(out_calls), "grad_mode": "no_grad",
              "tensor_mode": "fake", "via": "eager", "input_shapes": [],
              "model": {"name": model, "source": "synthetic", "build": "tests/replay/context_trace.py"}}
    trace = Trace(header=header, modules=modules, scopes=scopes, ops=ops, tensors=tensors, calls=out_calls,
                  signatures=sigs, path=path)
    write_trace(trace, path)
    return trace


# 5 GiB per bf16 tensor: two fit an n150's DRAM (12 x 1 GiB banks), three do not.
BIG = [1, 1, 51200, 51200]


def keeps_input_alive(path: str) -> Trace:
    """y = relu(x); z = relu(y); w = add(x, z): x stays alive across the second relu, which needs
    three big tensors in context but only two alone (the same signature as the first relu)."""
    return build_trace("keeps_input_alive", path, {"x": BIG, "y": BIG, "z": BIG, "w": BIG},
                       [("aten.relu.default", ["x"], "y"), ("aten.relu.default", ["y"], "z"),
                        ("aten.add.Tensor", ["x", "z", ["int", 1]], "w")])


def trailing_ones(path: str) -> Trace:
    """y = relu(x); v = y.view(160, 100, 512, 1, 1); w = v.view(160, 51200); z = relu(w). In TILE the
    view's two trailing 1s pad to 32 x 32: 16.8 GB, more than an n150's DRAM; folded it is 16 MB."""
    return build_trace("trailing_ones", path, {"x": [160, 100, 512], "y": [160, 100, 512],
                                               "v": [160, 100, 512, 1, 1], "w": [160, 51200], "z": [160, 51200]},
                       [("aten.relu.default", ["x"], "y"),
                        ("aten.view.default", ["y", ["list", [["int", d] for d in (160, 100, 512, 1, 1)]]], "v"),
                        ("aten.view.default", ["v", ["list", [["int", 160], ["int", 51200]]]], "w"),
                        ("aten.relu.default", ["w"], "z")])
