// The recorder's dispatch in C++ (optional: capture/accel.py builds it against the capture
// environment's torch; without it the recorder dispatches through Python, same traces).
//
// torch runs a TorchDispatchMode through its Python key: its interpreter's dispatch() turns the
// call's IValues into Python arguments, calls the innermost mode's __torch_dispatch__, which calls
// the op again from Python (its arguments parsed back into IValues), and turns the Python result
// back into IValues. While a recorder is adopted, torch's interpreter dispatches through this
// file's table instead (its vtable pointer swapped; torch's own table kept and every other method
// forwarded to it): when the innermost mode is the recorder, the arguments are made Python values
// exactly as torch makes them (what the recording encodes), the recording's before() runs, the op
// runs on the call's own IValues (no second parse, no conversion back), its outputs are made Python
// values and the recording's after() runs. Anything else goes to torch's own dispatch(): another
// mode innermost, a tensor subclass among the arguments, or a frame evaluator installed (Dynamo's,
// while compiled code runs: the recorder's Python methods must run in torch's guard).
// The dispatch-mode stack itself is never touched, so whatever reads it reads torch's entries.
#include <Python.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/PyInterpreter.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/DynamicTypes.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/PyInterpreter.h>
#include <torch/csrc/jit/python/pybind_utils.h>
#include <torch/csrc/utils/tensor_memoryformats.h>
#include <torch/csrc/utils/torch_dispatch_mode.h>

#ifndef OPTRACE_DISPATCH_SOURCE_SHA
#define OPTRACE_DISPATCH_SOURCE_SHA "unknown"
#endif

namespace {

using c10::impl::PyInterpreterVTable;
using c10::impl::TorchDispatchModeTLS;

// The adopted recorder (the mode object on the stack) and its recording's halves; set by adopt(),
// cleared by release(). One recorder at a time: a recorder entered inside another stays in Python.
PyObject* g_recorder = nullptr;
PyObject* g_before = nullptr;
PyObject* g_after = nullptr;
PyObject* g_no_kwargs = nullptr;  // the kwargs of a call without any: one dict, never written
const PyInterpreterVTable* g_torch_vtable = nullptr;  // torch's table, while ours is swapped in

const PyInterpreterVTable* torch_vtable() {
  return g_torch_vtable != nullptr ? g_torch_vtable : getPyInterpreter()->vtable_;
}

bool is_python_tensor(const c10::IValue& v) {
  return v.isTensor() && v.toTensor().unsafeGetTensorImpl()->key_set().has(c10::DispatchKey::Python);
}

bool has_python_tensor(const c10::IValue* args, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (is_python_tensor(args[i])) return true;
    if (args[i].isList()) {
      for (const c10::IValue& item : args[i].toListRef())
        if (is_python_tensor(item)) return true;
    }
  }
  return false;
}

bool is_kind(const c10::Argument& arg, c10::TypeKind kind) {
  const auto& t = arg.real_type();
  if (t->kind() == kind) return true;
  auto opt = t->cast<c10::OptionalType>();
  return opt && opt->getElementType()->kind() == kind;
}

// An argument as a Python value, as torch's dispatch makes it (dtypes, layouts and memory formats
// are ints in an IValue)
py::object python_value(const c10::Argument& arg, const c10::IValue& v) {
  if (v.isNone()) return py::none();
  if (is_kind(arg, c10::ScalarTypeType::Kind))
    return py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(torch::getTHPDtype(static_cast<c10::ScalarType>(v.toInt()))));
  if (is_kind(arg, c10::LayoutType::Kind))
    return py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(torch::getTHPLayout(static_cast<c10::Layout>(v.toInt()))));
  if (is_kind(arg, c10::MemoryFormatType::Kind))
    return py::reinterpret_borrow<py::object>(torch::utils::getTHPMemoryFormat(static_cast<c10::MemoryFormat>(v.toInt())));
  return torch::jit::toPyObject(v);
}

bool is_default(const c10::Argument& arg, const c10::IValue& v) {
  return arg.default_value().has_value() && *arg.default_value() == v;
}

// The call's (args, kwargs) as torch's dispatch makes them: positional arguments up to the trailing
// run equal to their defaults, and keyword-only ones that differ from their defaults.
std::pair<py::tuple, py::object> python_arguments(const c10::FunctionSchema& schema, const c10::IValue* args, size_t n) {
  const auto& params = schema.arguments();
  size_t kwarg_start = n;
  while (kwarg_start > 0 && params[kwarg_start - 1].kwarg_only()) kwarg_start--;
  size_t n_positional = kwarg_start;
  while (n_positional > 0 && is_default(params[n_positional - 1], args[n_positional - 1])) n_positional--;
  py::tuple positional(n_positional);
  for (size_t i = 0; i < n_positional; i++)
    PyTuple_SET_ITEM(positional.ptr(), i, python_value(params[i], args[i]).release().ptr());
  py::object kwargs = py::reinterpret_borrow<py::object>(g_no_kwargs);
  for (size_t i = kwarg_start; i < n; i++) {
    if (is_default(params[i], args[i])) continue;
    if (kwargs.ptr() == g_no_kwargs) kwargs = py::dict();
    py::str name(params[i].name());
    if (PyDict_SetItem(kwargs.ptr(), name.ptr(), python_value(params[i], args[i]).ptr()) < 0) throw python_error();
  }
  return {std::move(positional), std::move(kwargs)};
}

// The outputs on top of the stack as one Python value, as an op called from Python returns them
py::object python_outputs(const torch::jit::Stack& stack, size_t n) {
  if (n == 0) return py::none();
  if (n == 1) return torch::jit::toPyObject(stack.back());
  py::tuple out(n);
  for (size_t i = 0; i < n; i++)
    PyTuple_SET_ITEM(out.ptr(), i, torch::jit::toPyObject(stack[stack.size() - n + i]).release().ptr());
  return out;
}

py::object call(PyObject* f, std::initializer_list<PyObject*> args) {
  PyObject* r = PyObject_Vectorcall(f, const_cast<PyObject* const*>(args.begin()), args.size(), nullptr);
  if (r == nullptr) throw python_error();
  return py::reinterpret_steal<py::object>(r);
}

// The innermost entry of the dispatch-mode stack holds obj
bool innermost_is(PyObject* obj) {
  int64_t n = TorchDispatchModeTLS::stack_len();
  return obj != nullptr && n > 0 && TorchDispatchModeTLS::get_stack_at(n - 1)->ptr(getPyInterpreter()) == obj;
}

bool frame_evaluator_installed() {
  return _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get()) != _PyEval_EvalFrameDefault;
}

void record(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const size_t n = schema.arguments().size(), n_returns = schema.returns().size();
  const c10::IValue* args = stack->data() + stack->size() - n;
  torch::torch_dispatch_mode::StashTorchDispatchModeGuard stash;  // the op runs below the recorder
  py::handle func = torch::detail::getTorchApiFunction(op);
  auto [pargs, kwargs] = python_arguments(schema, args, n);
  py::object before = call(g_before, {func.ptr(), pargs.ptr(), kwargs.ptr()});
  if (before.is_none()) {  // passed through unrecorded
    py::gil_scoped_release no_gil;
    op.callBoxed(stack);
    return;
  }
  PyObject* spec = PyTuple_GET_ITEM(before.ptr(), 0);
  PyObject* named = PyTuple_GET_ITEM(before.ptr(), 1);
  PyObject* run = PyTuple_GET_ITEM(before.ptr(), 2);
  py::object out;
  if (run == Py_None) {
    {
      py::gil_scoped_release no_gil;
      op.callBoxed(stack);
    }
    out = python_outputs(*stack, n_returns);
  } else {  // a Python dispatcher on the overload: run it as the recorder would, results back to IValues
    PyObject* r = PyObject_Call(run, pargs.ptr(), kwargs.ptr());
    if (r == nullptr) throw python_error();
    out = py::reinterpret_steal<py::object>(r);
    torch::jit::drop(*stack, n);
    if (n_returns == 1) {
      torch::jit::push(*stack, torch::jit::toIValue(out, schema.returns()[0].real_type()));
    } else if (n_returns > 1) {
      for (size_t i = 0; i < n_returns; i++)
        torch::jit::push(*stack, torch::jit::toIValue(py::reinterpret_borrow<py::sequence>(out)[i], schema.returns()[i].real_type()));
    }
  }
  call(g_after, {spec, named, out.ptr(), pargs.ptr(), kwargs.ptr()});
}

struct RecorderInterpreter final : PyInterpreterVTable {
  std::string name() const override { return "optrace recorder"; }
  void dispatch(const c10::OperatorHandle& op, torch::jit::Stack* stack) const override {
    py::gil_scoped_acquire gil;
    const size_t n = op.schema().arguments().size();
    if (!innermost_is(g_recorder) || frame_evaluator_installed() || has_python_tensor(stack->data() + stack->size() - n, n)) {
      torch_vtable()->dispatch(op, stack);
      return;
    }
    record(op, stack);
  }

  // the rest: torch's own
  void incref(PyObject* o) const override { torch_vtable()->incref(o); }
  void decref(PyObject* o) const override { torch_vtable()->decref(o); }
  bool try_incref(const c10::impl::PyObjectSlot& s) const override { return torch_vtable()->try_incref(s); }
  size_t refcnt(PyObject* o) const override { return torch_vtable()->refcnt(o); }
  c10::intrusive_ptr<c10::TensorImpl> detach(const c10::TensorImpl* t) const override { return torch_vtable()->detach(t); }
  void reportErrorCallback(PyObject* f, c10::DispatchKey k) const override { torch_vtable()->reportErrorCallback(f, k); }
  void python_op_registration_trampoline(const c10::OperatorHandle& op, c10::DispatchKey k, c10::DispatchKeySet ks,
                                         torch::jit::Stack* s, bool with_keyset, bool with_op) const override {
    torch_vtable()->python_op_registration_trampoline(op, k, ks, s, with_keyset, with_op);
  }
  void throw_abstract_impl_not_imported_error(std::string opname, const char* module, const char* context) const override {
    torch_vtable()->throw_abstract_impl_not_imported_error(std::move(opname), module, context);
  }
  void python_dispatcher(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* s) const override {
    torch_vtable()->python_dispatcher(op, ks, s);
  }
  bool is_contiguous(const c10::TensorImpl* t, at::MemoryFormat f) const override { return torch_vtable()->is_contiguous(t, f); }
  c10::SymBool sym_is_contiguous(const c10::TensorImpl* t, at::MemoryFormat f) const override {
    return torch_vtable()->sym_is_contiguous(t, f);
  }
  bool is_strides_like(const c10::TensorImpl* t, at::MemoryFormat f) const override { return torch_vtable()->is_strides_like(t, f); }
  bool is_non_overlapping_and_dense(const c10::TensorImpl* t) const override { return torch_vtable()->is_non_overlapping_and_dense(t); }
  c10::Device device(const c10::TensorImpl* t) const override { return torch_vtable()->device(t); }
  int64_t dim(const c10::TensorImpl* t) const override { return torch_vtable()->dim(t); }
  c10::IntArrayRef strides(const c10::TensorImpl* t) const override { return torch_vtable()->strides(t); }
  c10::IntArrayRef sizes(const c10::TensorImpl* t) const override { return torch_vtable()->sizes(t); }
  c10::SymIntArrayRef sym_sizes(const c10::TensorImpl* t) const override { return torch_vtable()->sym_sizes(t); }
  c10::Layout layout(const c10::TensorImpl* t) const override { return torch_vtable()->layout(t); }
  int64_t numel(const c10::TensorImpl* t) const override { return torch_vtable()->numel(t); }
  c10::SymInt sym_numel(const c10::TensorImpl* t) const override { return torch_vtable()->sym_numel(t); }
  c10::SymIntArrayRef sym_strides(const c10::TensorImpl* t) const override { return torch_vtable()->sym_strides(t); }
  c10::SymInt sym_storage_offset(const c10::TensorImpl* t) const override { return torch_vtable()->sym_storage_offset(t); }
  void trace_gpu_event_creation(c10::DeviceType d, uintptr_t e) const override { torch_vtable()->trace_gpu_event_creation(d, e); }
  void trace_gpu_event_deletion(c10::DeviceType d, uintptr_t e) const override { torch_vtable()->trace_gpu_event_deletion(d, e); }
  void trace_gpu_event_record(c10::DeviceType d, uintptr_t e, uintptr_t s) const override {
    torch_vtable()->trace_gpu_event_record(d, e, s);
  }
  void trace_gpu_event_wait(c10::DeviceType d, uintptr_t e, uintptr_t s) const override { torch_vtable()->trace_gpu_event_wait(d, e, s); }
  void trace_gpu_memory_allocation(c10::DeviceType d, uintptr_t p) const override { torch_vtable()->trace_gpu_memory_allocation(d, p); }
  void trace_gpu_memory_deallocation(c10::DeviceType d, uintptr_t p) const override {
    torch_vtable()->trace_gpu_memory_deallocation(d, p);
  }
  void trace_gpu_stream_creation(c10::DeviceType d, uintptr_t s) const override { torch_vtable()->trace_gpu_stream_creation(d, s); }
  void trace_gpu_device_synchronization(c10::DeviceType d) const override { torch_vtable()->trace_gpu_device_synchronization(d); }
  void trace_gpu_stream_synchronization(c10::DeviceType d, uintptr_t s) const override {
    torch_vtable()->trace_gpu_stream_synchronization(d, s);
  }
  void trace_gpu_event_synchronization(c10::DeviceType d, uintptr_t e) const override {
    torch_vtable()->trace_gpu_event_synchronization(d, e);
  }
  void reset_backward_hooks(const c10::TensorImpl* t) const override { torch_vtable()->reset_backward_hooks(t); }
};

RecorderInterpreter recorder_vtable;

void clear() {
  Py_CLEAR(g_recorder);
  Py_CLEAR(g_before);
  Py_CLEAR(g_after);
}

// adopt(recorder, recording): the entered recorder is dispatched from here from now on; True, or
// False when another recorder is adopted already
PyObject* adopt(PyObject*, PyObject* const* argv, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "adopt(recorder, recording)");
    return nullptr;
  }
  if (g_recorder != nullptr) Py_RETURN_FALSE;
  PyObject* recorder = argv[0];
  if (!innermost_is(recorder)) {
    PyErr_SetString(PyExc_RuntimeError, "adopt: the recorder must be the innermost dispatch mode (enter it first)");
    return nullptr;
  }
  PyObject* before = PyObject_GetAttrString(argv[1], "before");
  PyObject* after = before ? PyObject_GetAttrString(argv[1], "after") : nullptr;
  if (after == nullptr) {
    Py_XDECREF(before);
    return nullptr;
  }
  g_recorder = Py_NewRef(recorder);
  g_before = before;
  g_after = after;
  c10::impl::PyInterpreter* torch_interpreter = getPyInterpreter();
  g_torch_vtable = torch_interpreter->vtable_;
  torch_interpreter->vtable_ = &recorder_vtable;
  Py_RETURN_TRUE;
}

// release(recorder): torch's table back in its interpreter, and the recorder's references dropped
PyObject* release(PyObject*, PyObject* recorder) {
  if (recorder != g_recorder) Py_RETURN_NONE;
  c10::impl::PyInterpreter* torch_interpreter = getPyInterpreter();
  if (torch_interpreter->vtable_ == &recorder_vtable) torch_interpreter->vtable_ = g_torch_vtable;
  g_torch_vtable = nullptr;
  clear();
  Py_RETURN_NONE;
}

PyMethodDef functions[] = {
    {"adopt", (PyCFunction)(void (*)(void))adopt, METH_FASTCALL,
     "adopt(recorder, recording): dispatch the entered recorder from C++; False when one is adopted already."},
    {"release", release, METH_O, "release(recorder): forget the adopted recorder."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "capture._dispatch", "The recorder's dispatch in C++.", -1, functions};

}  // namespace

PyMODINIT_FUNC PyInit__dispatch() {
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  g_no_kwargs = PyDict_New();
  if (g_no_kwargs == nullptr || PyModule_AddStringConstant(m, "SOURCE_SHA", OPTRACE_DISPATCH_SOURCE_SHA) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
