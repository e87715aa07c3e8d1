"""Stage 1: an FX `GraphModule` becomes an IR `Function` plus its binding table.

Lowering mirrors `torch.fx.Interpreter.run_node`: one method per opcode,
`lower_<op>`, so the place for a new opcode is obvious. Node arguments become
operands the way `torch.fx.node.map_arg` rebuilds them at run time: lists,
tuples, namedtuples, dicts and slices are rebuilt around their nodes; literals
the emitter can write exactly become `Const`; every other object is bound by
reference as a `Global`, so no constant can fail to render or inject code.
"""

from __future__ import annotations

import builtins
import math
import operator
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule

from astgen import ir
from astgen.errors import CodegenError, VerifyError, not_a_graph_module, user_source_line
from astgen.importable import is_safe_builtin, public_name
from astgen.ir import is_exact_literal
from astgen.names import Namespace, clean_name, is_identifier, piece_name


@dataclass(frozen=True)
class Lowered:
    """A lowered graph: the IR, and the objects its `Global`s name, by slot."""

    function: ir.Function
    bindings: tuple[object, ...]


_DTYPE_NAMES: dict[torch.dtype, str] = {}
# One `TensorType` per (dtype, static shape) seen, and one `TupleType` per
# tuple of those: a stitching graph repeats a few types in every layer, and
# equal types that are one object make lowering cheaper and the code cache's
# deep comparison of IR quick. A tuple type is found by its elements' ids,
# which stay its elements' while it holds them.
_TENSOR_TYPES: dict[tuple[torch.dtype, torch.Size], ir.TensorType] = {}
_TUPLE_TYPES: dict[tuple[int, ...], ir.TupleType] = {}
_MAX_INTERNED = 4096

# How deeply an argument's tuples, lists, dicts and slices may nest. Python's
# parser reads at most 200 nested brackets, and astgen's text must parse
# back to the tree it compiled; a tracer makes a few levels, never a hundred.
MAX_NESTING = 100


def value_type(meta_value: object) -> ir.Type:
    """The IR type of an FX example value (`node.meta['val']` or `['example_value']`)."""
    if isinstance(meta_value, torch.Tensor):
        dtype, sizes = meta_value.dtype, meta_value.shape
        try:
            found = _TENSOR_TYPES.get((dtype, sizes))
        except TypeError:  # a symbolic size does not hash: never interned
            found = None
        if found is not None:
            return found
        name = _DTYPE_NAMES.get(dtype)
        if name is None:
            name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
        shape = tuple([size if type(size) is int else str(size) for size in sizes])
        made = ir.TensorType(name, shape)
        if all(type(size) is int for size in shape):
            if len(_TENSOR_TYPES) >= _MAX_INTERNED:
                _TENSOR_TYPES.clear()
            _TENSOR_TYPES[(dtype, sizes)] = made
        return made
    if isinstance(meta_value, torch.SymInt):
        return ir.IntType(symbolic=True)
    if isinstance(meta_value, bool):
        return ir.OpaqueType("bool")
    if isinstance(meta_value, int):
        return ir.IntType()
    container = _container_type(meta_value, value_type)
    if container is not None:
        return container
    if meta_value is None:
        return ir.UNKNOWN
    return ir.OpaqueType(type(meta_value).__name__)


def _container_type(value: object, element_type: Callable[[object], ir.Type]) -> ir.Type | None:
    """The type of a tuple, list or dict whose elements `element_type` types; None for anything else."""
    if type(value) is tuple:
        elements = tuple([element_type(item) for item in value])
        key = tuple(map(id, elements))
        found = _TUPLE_TYPES.get(key)
        if found is None:
            if len(_TUPLE_TYPES) >= _MAX_INTERNED:
                _TUPLE_TYPES.clear()
            found = _TUPLE_TYPES[key] = ir.TupleType(elements)
        return found
    if isinstance(value, list):
        return ir.ListType(tuple([element_type(item) for item in value]))
    if isinstance(value, dict):
        return ir.DictType()
    return None


def _output_type(module: object) -> ir.Type:
    """A GraphModule's result type, read off its output node."""
    if not isinstance(module, torch.fx.GraphModule):
        return ir.UNKNOWN
    for node in reversed(module.graph.nodes):
        if node.op == "output":
            if not node.args:
                return ir.UNKNOWN
            return _argument_type(node.args[0])
    return ir.UNKNOWN


def _argument_type(argument: object) -> ir.Type:
    if isinstance(argument, torch.fx.Node):
        return node_type(argument)
    return _container_type(argument, _argument_type) or ir.UNKNOWN


def node_type(node: torch.fx.Node) -> ir.Type:
    """The IR type FX metadata gives `node`; unknown where the metadata is missing or malformed.

    Metadata is advice anyone may write: a type it cannot give is no error.
    """
    try:
        return _meta_type(node)
    except Exception:
        return ir.UNKNOWN


def _meta_type(node: torch.fx.Node) -> ir.Type:
    meta = node.meta
    if not meta:
        return ir.UNKNOWN
    for key in ("val", "example_value"):
        if key in meta:
            return value_type(meta[key])
    tensor_meta = meta.get("tensor_meta")
    if tensor_meta is not None and hasattr(tensor_meta, "dtype") and hasattr(tensor_meta, "shape"):
        dtype = str(tensor_meta.dtype).removeprefix("torch.")
        return ir.TensorType(
            dtype, tuple(int(size) if isinstance(size, int) else str(size) for size in tensor_meta.shape)
        )
    return ir.UNKNOWN


def _hint(obj: object) -> str:
    """A readable name for a bound object; the hygiene pass makes it a valid identifier."""
    if isinstance(obj, torch._ops.OpOverload):
        return f"{obj.namespace}_{obj._opname}_{obj._overloadname}"
    if isinstance(obj, torch._ops.OpOverloadPacket):
        return f"{obj._qualified_op_name.replace('::', '_')}"
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    if isinstance(obj, torch.device):
        return f"device_{obj.type}" + (f"_{obj.index}" if obj.index is not None else "")
    name = getattr(obj, "__name__", None)
    if isinstance(name, str) and callable(obj):
        # Qualified by the module's last part (`torch_clamp`), as the call's
        # result usually has the bare name already.
        module = getattr(obj, "__module__", None)
        return f"{module.rpartition('.')[2]}_{name}" if isinstance(module, str) else name
    if isinstance(obj, float) and math.isnan(obj):
        return "nan"
    return type(obj).__name__.lower()


class _Lowering:
    def __init__(
        self,
        gm: torch.fx.GraphModule,
        submodules: Mapping[str, Callable[..., Any]],
        inline: bool = False,
        unpack: bool = True,
    ) -> None:
        self.gm = gm
        self.submodules = submodules
        self.inline = inline
        self.unpack = unpack
        self.piece_by_target: dict[str, ir.Global] = {}
        # While a piece is spliced in: its target (origins read `target.node`)
        # and the operand its output node gives, once lowered.
        self.inlining: list[str] = []
        self.inlined_output: ir.Operand | None = None
        self.env: dict[torch.fx.Node, ir.Operand] = {}
        self.int_consts: dict[int, ir.Const | None] = {}
        self.nesting = 0
        # Calls whose every user reads one position of the tuple they return,
        # by the reading node: see `unpack_reads`.
        self.readers: dict[torch.fx.Node, tuple[_Unpacked, int]] = {}
        self.unpacked: list[_Unpacked] = []
        self.params: list[ir.Param] = []
        self.body: list[ir.Instruction] = []
        self.bindings: list[object] = []
        self.globals: list[ir.Global] = []
        self.global_by_id: dict[int, ir.Global] = {}
        # Each node's name is reserved for it; `node.name` need not be unique
        # (anyone may assign it), but an SSA name must be, so a name given
        # once is never given again.
        self.names = Namespace(node.name for node in gm.graph.nodes)
        self.node: torch.fx.Node | None = None
        self.returned = False

    # ------------------------------------------------------------ helpers

    def error(self, message: str) -> CodegenError:
        if self.node is None:
            return CodegenError(message)
        return CodegenError.at(self.node, message)

    def origin(self, node: torch.fx.Node) -> ir.Origin:
        name = ".".join([*self.inlining, node.name]) if self.inlining else node.name
        trace = node.stack_trace
        return ir.Origin(name, None if trace is None else user_source_line(trace))

    def bind(self, obj: object, hint: str | None = None) -> ir.Global:
        """The `Global` for `obj`; the same object is bound once."""
        found = self.global_by_id.get(id(obj))
        if found is not None:
            return found
        bound = self.new_global(obj, hint if hint is not None else _hint(obj), path=public_name(obj))
        self.global_by_id[id(obj)] = bound
        return bound

    def bind_piece(self, target: str, module: object) -> ir.Global:
        """The `Global` for the callable of `call_module` target `target`: one per target, not per
        object, since a loader is handed a callable for each target by name."""
        found = self.piece_by_target.get(target)
        if found is None:
            # The call's result is named after the target, so the callee takes a name of its own.
            piece = fast_callable(module)
            found = self.piece_by_target[target] = self.new_global(piece, piece_name(target), piece=target)
        return found

    def new_global(self, obj: object, hint: str, *, piece: str | None = None, path: str | None = None) -> ir.Global:
        name = self.names.fresh(hint)
        bound = ir.Global(name, len(self.bindings), piece, path)
        self.bindings.append(obj)
        self.globals.append(bound)
        return bound

    def operand(self, argument: object) -> ir.Operand:
        """An FX argument as an operand, rebuilt the way `map_arg` rebuilds it."""
        if isinstance(argument, torch.fx.Node):
            found = self.env.get(argument)
            if found is not None:
                return found
            where = "is not in this graph" if argument.graph is not self.gm.graph else "is used before it is defined"
            raise self.error(f"argument {argument.name!r} {where}")
        if type(argument) is int:
            # Small ints (getitem indices) repeat in every layer: one Const each.
            const = self.int_consts.get(argument)
            if const is None:
                const = self.int_consts[argument] = ir.Const(argument) if is_exact_literal(argument) else None
            if const is not None:
                return const
        elif is_exact_literal(argument):
            return ir.Const(argument)
        if isinstance(argument, (tuple, list, dict, slice)):
            self.nesting += 1
            try:
                if self.nesting > MAX_NESTING:
                    raise self.error(f"arguments nest more than {MAX_NESTING} levels deep")
                return self.container(argument)
            finally:
                self.nesting -= 1
        return self.reference(argument)

    def container(self, argument: tuple[object, ...] | list[object] | dict[object, object] | slice) -> ir.Operand:
        """A tuple, list, dict or slice argument, its items lowered by `operand`."""
        if isinstance(argument, tuple):
            items = tuple(self.operand(item) for item in argument)
            if hasattr(argument, "_fields"):
                return ir.NamedTupleOf(self.bind(type(argument)), items)
            return ir.TupleOf(items)
        if isinstance(argument, list):
            return ir.ListOf(tuple(self.operand(item) for item in argument))
        if isinstance(argument, dict):
            return ir.DictOf(tuple((self.operand(key), self.operand(value)) for key, value in argument.items()))
        return ir.SliceOf(self.operand(argument.start), self.operand(argument.stop), self.operand(argument.step))

    def reference(self, obj: object) -> ir.Global | ir.Builtin:
        """A builtin the loader accepts by its own name; anything else bound by reference."""
        if is_safe_builtin(obj):
            return ir.Builtin(obj.__name__)  # type: ignore[attr-defined]
        return self.bind(obj)

    def arguments(self, node: torch.fx.Node) -> tuple[tuple[ir.Operand, ...], ir.Kwargs]:
        env = self.env
        # Most arguments are nodes lowered already: read them without a call.
        args = tuple([env[arg] if type(arg) is _Node and arg in env else self.operand(arg) for arg in node.args])
        if not node.kwargs:
            return args, ()
        for key in node.kwargs:
            if not isinstance(key, str):
                raise self.error(f"keyword argument name {key!r} is not a string")
        kwargs = tuple([(_exact_str(key), self.operand(value)) for key, value in node.kwargs.items()])
        return args, kwargs

    def result(self, node: torch.fx.Node, type_: ir.Type | None = None) -> ir.Value:
        name = self.names.claim(_exact_str(node.name))
        value = ir.Value(name, node_type(node) if type_ is None else type_)
        self.env[node] = value
        return value

    def fetch(self, target: str) -> object:
        """`Interpreter.fetch_attr`: walk a dotted path from the root module."""
        obj: object = self.gm
        walked = []
        for part in target.split("."):
            walked.append(part)
            if not hasattr(obj, part):
                raise self.error(f"{type(self.gm).__name__} has no attribute {'.'.join(walked)!r}")
            obj = getattr(obj, part)
        return obj

    # ------------------------------------------------------------ opcodes

    def lower_placeholder(self, node: torch.fx.Node) -> None:
        if self.inlining:
            # `inline_call` bound every placeholder of the spliced piece.
            raise self.error("placeholder of a spliced piece was not bound")
        target = node.target
        if not isinstance(target, str):
            raise self.error("placeholder target is not a string")
        value = self.result(node)
        if target.startswith("**"):
            raise self.error("a `**kwargs` placeholder cannot be called positionally")
        if target.startswith("*"):
            if any(param.variadic for param in self.params):
                raise self.error("a graph can have only one starred placeholder")
            # The interpreter hands a starred placeholder a list, not a tuple.
            packed = ir.Value(self.names.fresh(f"{node.name}_packed"), ir.OpaqueType("tuple"))
            self.params.append(ir.Param(packed, variadic=True, origin=self.origin(node)))
            self.body.append(ir.CallFunction(value, ir.Builtin("list"), (packed,), (), self.origin(node)))
            return
        default: ir.Const | ir.Global | None = None
        if node.args:
            default_value = node.args[0]
            if isinstance(default_value, torch.fx.Node):
                # The interpreter hands over the node's value; a parameter
                # default is evaluated before any node runs, so it has none.
                raise self.error(f"placeholder default is the node {default_value.name!r}, which has no value yet")
            if is_exact_literal(default_value):
                default = ir.Const(default_value)
            else:
                default = self.bind(default_value, f"{node.name}_default")
        self.params.append(ir.Param(value, default, origin=self.origin(node)))

    def lower_get_attr(self, node: torch.fx.Node) -> None:
        if not isinstance(node.target, str):
            raise self.error("get_attr target is not a string")
        # The node stands for the object itself, so the global takes the node's name.
        self.names.release(node.name)
        # Bound once, at compile time, like a CUDA graph binds its buffers:
        # in-place updates are seen, reassigning the attribute is not.
        self.env[node] = self.bind(self.fetch(node.target), node.name)

    def lower_call_module(self, node: torch.fx.Node) -> None:
        if not isinstance(node.target, str):
            raise self.error("call_module target is not a string")
        target = _exact_str(node.target)
        module = self.submodules[target] if target in self.submodules else self.fetch(target)
        if not callable(module):
            raise self.error(f"submodule {target!r} is not callable")
        if self.inline and target not in self.submodules and self.inline_call(node, target, module):
            return
        result_type = node_type(node)
        if isinstance(result_type, ir.UnknownType) and target not in self.submodules and runs_its_graph(module):
            # The piece's own output node says what a call returns. Not so for
            # a replacement (`submodules=`), which may return another
            # container: unpacking a dict by the replaced piece's tuple type
            # would silently give its keys, so its items are read by index,
            # exactly as the interpreter reads them.
            result_type = _output_type(module)
        args, kwargs = self.arguments(node)
        if self.inlining:
            # A spliced piece's own pieces are not the stitching graph's: bound as objects.
            bound = self.bind(fast_callable(module), piece_name(target))
        else:
            bound = self.bind_piece(target, module)
        call = ir.CallModule(self.result(node, result_type), bound, target, args, kwargs, self.origin(node))
        self.body.append(call)
        if self.unpack and type(result_type) is ir.TupleType and not self.inlining:
            self.unpack_reads(node, call, result_type)

    def unpack_reads(self, node: torch.fx.Node, call: ir.CallModule, type_: ir.TupleType) -> None:
        """Unpack `call`'s tuple straight from the call when FX says every user of `node` reads one
        position of it, by a constant index: what `passes.unpack_tuples` does for such a tuple,
        done here because it is most of a stitching graph, and making each read a `GetItem`
        for the pass to take apart again was a third of the lowering's time.

        The readers make no instruction (`lower_getitem`); `finish_unpacking` gives
        the call its tuple of results once the whole graph is lowered.
        """
        positions = _read_positions(node, len(type_.elements))
        if positions is None:
            return
        unpacked = _Unpacked(call, type_)
        for reader, position in positions.items():
            self.readers[reader] = (unpacked, position)

    def lower_call_function(self, node: torch.fx.Node) -> None:
        function = node.target
        if function is operator.getitem and len(node.args) == 2 and not node.kwargs:
            # Most nodes of a stitching graph: one read of a piece's tuple.
            self.lower_getitem(node)
            return
        if not callable(function):
            raise self.error(f"call_function target {function!r} is not callable")
        args, kwargs = self.arguments(node)
        origin = self.origin(node)
        if function is builtins.getattr and len(args) == 2 and not kwargs and _is_str_const(args[1]):
            attribute = args[1].value  # type: ignore[union-attr]
            self.body.append(ir.GetAttr(self.result(node), args[0], str(attribute), origin))
        elif not kwargs and (name := _operator_name(function, len(args))) is not None:
            self.body.append(ir.Operator(self.result(node), name, args, origin))
        else:
            self.body.append(ir.CallFunction(self.result(node), self.reference(function), args, kwargs, origin))

    def lower_getitem(self, node: torch.fx.Node) -> None:
        """`call_function operator.getitem(container, key)`: most nodes of a stitching graph,
        so the common case (a node and a small int) is read here without the general helpers."""
        env = self.env
        source, index = node.args
        container = env[source] if type(source) is _Node and source in env else self.operand(source)
        key: ir.Operand | None = self.int_consts.get(index) if type(index) is int else None  # type: ignore[call-overload]
        if key is None:
            key = self.operand(index)
        if type(container) is ir.TupleOf:
            item = _folded_item(container, key)
            if item is not None:
                # An item of a spliced piece's output tuple: the value itself.
                env[node] = item
                return
        result_type = node_type(node) if node.meta else ir.UNKNOWN
        if result_type is ir.UNKNOWN:
            result_type = _element_type(container, key)
        value = env[node] = ir.Value(self.names.claim(_exact_str(node.name)), result_type)
        trace = node.stack_trace
        origin = self.origin(node) if trace is not None or self.inlining else ir.Origin(node.name)
        self.body.append(ir.GetItem(value, container, key, origin))

    def read_position(self, node: torch.fx.Node, unpacked: _Unpacked, position: int) -> None:
        """A `getitem` node `unpack_reads` made a result of the call it reads: its value, no instruction."""
        result_type = node_type(node) if node.meta else ir.UNKNOWN
        if result_type is ir.UNKNOWN:
            # As `_element_type` types the read, by the index as written.
            result_type = unpacked.type.elements[node.args[1]]  # type: ignore[index]
        name = node.name
        value = self.env[node] = ir.Value(
            self.names.claim(name if type(name) is str else _exact_str(name)), result_type
        )
        if not unpacked.results:
            # `unpack_tuples` names unread positions in the order tuples are first read.
            self.unpacked.append(unpacked)
        unpacked.results[position] = value

    def lower_call_method(self, node: torch.fx.Node) -> None:
        if not isinstance(node.target, str):
            raise self.error("call_method target is not a string")
        if not node.args:
            raise self.error("call_method has no receiver (its first argument)")
        args, kwargs = self.arguments(node)
        method = _exact_str(node.target)
        self.body.append(ir.CallMethod(self.result(node), args[0], method, args[1:], kwargs, self.origin(node)))

    def lower_output(self, node: torch.fx.Node) -> None:
        if self.returned:
            raise self.error("the graph has more than one output node")
        if len(node.args) != 1 or node.kwargs:
            raise self.error("an output node takes exactly one argument")
        if self.inlining:
            self.inlined_output = self.operand(node.args[0])
            self.returned = True
            return
        self.body.append(ir.Return(self.operand(node.args[0]), self.origin(node)))
        self.returned = True

    # ------------------------------------------------------------ inlining

    def inline_call(self, node: torch.fx.Node, target: str, module: object) -> bool:
        """Splice `module`'s graph in place of the call `node`; False where it must stay a call.

        The piece's placeholders take the call's operands, its nodes are
        lowered here with fresh names and origins `target.node`, and its
        output operand stands for the call's result. Only a piece whose call
        would run exactly its graph is spliced (see `runs_its_graph`), and
        only where that is exact: every argument maps to a placeholder, and
        the output holds no list or dict that two readers could share.
        """
        if not runs_its_graph(module) or len(self.inlining) > _MAX_INLINE_DEPTH:
            return False
        graph = module.graph  # type: ignore[attr-defined]
        if type(graph._codegen) is not torch.fx.graph.CodeGen:
            return False
        outputs = graph.find_nodes(op="output")
        if len(outputs) != 1 or len(outputs[0].args) != 1 or not _immutable_output(outputs[0].args[0]):
            return False
        placeholders = graph.find_nodes(op="placeholder")
        if any(not isinstance(p.target, str) or p.target.startswith("*") for p in placeholders):
            return False
        if len(node.args) > len(placeholders) or not set(node.kwargs) <= {p.target for p in placeholders}:
            return False
        if any(p.target in node.kwargs for p in placeholders[: len(node.args)]):
            return False  # one argument given twice: the call raises, as it must
        bound: dict[torch.fx.Node, ir.Operand] = {}
        for index, placeholder in enumerate(placeholders):
            if index < len(node.args):
                bound[placeholder] = self.operand(node.args[index])
            elif placeholder.target in node.kwargs:
                bound[placeholder] = self.operand(node.kwargs[placeholder.target])
            elif placeholder.args and not isinstance(placeholder.args[0], torch.fx.Node):
                bound[placeholder] = self.operand(placeholder.args[0])
            else:
                return False
        saved = (self.gm, self.env, self.submodules, self.returned, self.node)
        self.gm, self.env, self.submodules, self.returned = module, bound, {}, False  # type: ignore[assignment]
        self.inlining.append(target)
        try:
            for inner in graph.nodes:
                if inner.op != "placeholder":
                    self.lower_node(inner)
        finally:
            self.inlining.pop()
            self.gm, self.env, self.submodules, self.returned, self.node = saved
        if self.inlined_output is None:
            raise self.error(f"spliced piece {target!r} has no output")
        self.env[node] = self.inlined_output
        self.inlined_output = None
        return True

    # ------------------------------------------------------------ driver

    def lower_node(self, node: torch.fx.Node) -> None:
        self.node = node
        if self.returned:
            raise self.error("node after the output node")
        reading = self.readers.get(node)
        method = self.methods.get(node.op)
        if method is None and reading is None:
            # The class's function, not a method bound to `self`: a dict of those on `self` is a
            # cycle, which kept each lowering alive for the collector (a sixth of a cold text's time).
            method = self.methods[node.op] = getattr(type(self), f"lower_{node.op}", None)
            if method is None:
                raise self.error(f"unknown opcode {node.op!r}")
        try:
            if reading is not None:
                self.read_position(node, *reading)
            else:
                method(self, node)  # type: ignore[misc]
        except CodegenError:
            raise
        except RecursionError:
            raise self.error("arguments nest too deeply to lower") from None
        except Exception as error:
            # A hostile object (a `__getattr__` or `__name__` that raises, a
            # `str` subclass) fails in the lowering's own code: blame the node.
            raise self.error(f"cannot lower this node: {type(error).__name__}: {error}") from error

    def run(self, name: str) -> Lowered:
        self.methods: dict[str, Callable[[_Lowering, torch.fx.Node], None] | None] = {}
        # The module defines the function under its name: no global may take it.
        self.names.give([name])
        # A pytree graph takes the exported module's own arguments: their names are the signature's.
        self.signature = _pytree_signature(self.gm.graph)
        if self.signature is not None:
            self.names.give(self.signature[0])
        for node in self.gm.graph.nodes:
            self.lower_node(node)
        self.node = None
        if not self.returned:
            raise CodegenError("the graph has no output node")
        self._check_defaults()
        if type(self.gm.graph._codegen) is not torch.fx.graph.CodeGen:
            self._process_io()
        if self.unpacked:
            self.finish_unpacking()
        function = ir.Function(name, tuple(self.params), tuple(self.body), tuple(self.globals))
        return Lowered(function, tuple(self.bindings))

    def _process_io(self) -> None:
        """Wrap the body in the graph's own input/output processing, as `Interpreter.run` does.

        A graph with a pytree codegen (torch.export's `.module()`) takes the
        user's nested arguments and flattens them into its placeholders.
        """
        graph = self.gm.graph
        if any(param.variadic or param.default is not None for param in self.params):
            raise CodegenError("a graph with custom input processing cannot have defaults or a starred placeholder")
        flat = ir.Value(self.names.fresh("flat_args"), ir.ListType())
        params: list[ir.Param]
        if self.signature is not None:
            # As FX's own code for it: `def forward(inp, mask)`, then
            # `tree_flatten_spec(([inp], {'mask': mask}), in_spec)`.
            names, keywords, in_spec = self.signature
            values = [ir.Value(name) for name in names]
            structure: ir.Operand = ir.ListOf(tuple(values))
            if _has_args_kwargs(in_spec):
                count = in_spec.child(0).num_children
                pairs = zip(keywords, values[count:], strict=False)
                keyword_values = ir.DictOf(tuple((ir.Const(key), value) for key, value in pairs))
                structure = ir.TupleOf((ir.ListOf(tuple(values[:count])), keyword_values))
            flatten = self.bind(torch.fx._pytree.tree_flatten_spec, "tree_flatten_spec")
            call = ir.CallFunction(flat, flatten, (structure, self.bind(in_spec, "in_spec")), ())
            params = [ir.Param(value) for value in values]
        else:
            packed = ir.Value(self.names.fresh("args"), ir.OpaqueType("tuple"))
            call = ir.CallFunction(
                flat, self.bind(graph._codegen.process_inputs, "process_inputs"), (ir.Starred(packed),), ()
            )
            params = [ir.Param(packed, variadic=True)]
        prologue: list[ir.Instruction] = [call, ir.Unpack(tuple(param.value for param in self.params), flat)]
        returned = self.body.pop()
        if not isinstance(returned, ir.Return):
            raise VerifyError("IR: the body does not end in its Return")
        result = ir.Value(self.names.fresh("result"))
        epilogue: list[ir.Instruction] = [
            ir.CallFunction(
                result,
                self.bind(graph._codegen.process_outputs, "process_outputs"),
                (returned.value,),
                (),
                returned.origin,
            ),
            ir.Return(result, returned.origin),
        ]
        self.params = params
        self.body = prologue + self.body + epilogue

    def finish_unpacking(self) -> None:
        """Give each call `unpack_reads` took apart its tuple of results.

        A position nobody reads gets a fresh name, as `unpack_tuples` names
        it: after every other name is given, so the two agree.
        """
        finished: dict[int, ir.Instruction] = {}
        for unpacked in self.unpacked:
            call, elements = unpacked.call, unpacked.type.elements
            base = call.results[0].name
            results = tuple(
                unpacked.results.get(position)
                or ir.Value(self.names.fresh(clean_name(f"{base}_{position}")), elements[position])
                for position in range(len(elements))
            )
            finished[id(call)] = ir.CallModule(results, call.module, call.target, call.args, call.kwargs, call.origin)
        self.body = [finished.get(id(instruction), instruction) for instruction in self.body]

    def _check_defaults(self) -> None:
        # The interpreter reads placeholders in order, so a default before a
        # parameter without one can never be used: Python would reject it.
        if all([param.default is None for param in self.params]):
            return  # most graphs, a stitching graph's pieces each
        starred = ir.starred_index(self.params)
        last_required = max(
            (index for index, param in enumerate(self.params[:starred]) if param.default is None),
            default=-1,
        )
        for index in range(last_required):
            param = self.params[index]
            if param.default is not None:
                self.params[index] = ir.Param(param.value, None, param.variadic, param.origin)


_Node = torch.fx.Node


class _Unpacked:
    """A call whose tuple `_Lowering.unpack_reads` unpacks, and the values read so far, by position."""

    __slots__ = ("call", "results", "type")

    def __init__(self, call: ir.CallModule, type_: ir.TupleType) -> None:
        self.call = call
        self.type = type_
        self.results: dict[int, ir.Value] = {}


def _read_positions(node: torch.fx.Node, arity: int) -> dict[torch.fx.Node, int] | None:
    """Each user of `node` by the position of its tuple it reads, where every user is a
    `getitem` of `node` at a distinct constant index and there are two or more
    (`passes.unpack_tuples`'s rule); None otherwise."""
    users = node.users
    if len(users) < 2:
        return None
    positions: dict[torch.fx.Node, int] = {}
    taken: set[int] = set()
    for user in users:
        if user.op != "call_function" or user.target is not operator.getitem or user.kwargs:
            return None
        args = user.args
        if len(args) != 2 or args[0] is not node or type(args[1]) is not int:
            return None
        position = args[1] + arity if args[1] < 0 else args[1]
        if not 0 <= position < arity or position in taken:
            return None
        taken.add(position)
        positions[user] = position
    return positions


def _exact_str(text: str) -> str:
    """`text` as a plain `str`: a subclass can override anything, and `ast` takes only `str`."""
    return str.__str__(text)


# Pieces nest rarely; a bound keeps a self-referencing module from recursing forever.
_MAX_INLINE_DEPTH = 32


def _has_args_kwargs(in_spec: Any) -> bool:
    """Whether a pytree input spec is `(args tuple, kwargs dict)`, as torch.export writes it."""
    return bool(
        in_spec.type is tuple
        and in_spec.num_children == 2
        and in_spec.child(0).type is tuple
        and in_spec.child(1).type is dict
    )


def _pytree_signature(graph: torch.fx.Graph) -> tuple[list[str], tuple[str, ...], Any] | None:
    """For a graph with FX's pytree codegen: its parameter names, which of them are keywords, and its input spec."""
    codegen = graph._codegen
    info = getattr(codegen, "pytree_info", None)
    if not isinstance(codegen, torch.fx.graph._PyTreeCodeGen) or info is None or info.in_spec is None:
        return None
    names = [name for name in info.orig_args if name != "self"]
    if not all(isinstance(name, str) and name.isidentifier() for name in names):
        return None
    keywords: tuple[str, ...] = ()
    if _has_args_kwargs(info.in_spec):
        keywords = tuple(info.in_spec.child(1).context)
        if info.in_spec.child(0).num_children > len(names) or not all(isinstance(key, str) for key in keywords):
            return None
    return names, keywords, info.in_spec


def _immutable_output(argument: object) -> bool:
    """Whether a piece's output can stand for the call's result wherever it is read:
    nodes and literals, in tuples (a list or dict built twice would be two objects)."""
    if type(argument) is tuple:
        return all(_immutable_output(item) for item in argument)
    return isinstance(argument, torch.fx.Node) or is_exact_literal(argument)


def _folded_item(container: ir.Operand, key: ir.Operand) -> ir.Operand | None:
    """`container[key]` where the container is a tuple built in the IR and the key a constant index."""
    if not isinstance(container, ir.TupleOf) or not isinstance(key, ir.Const) or type(key.value) is not int:
        return None
    index = key.value
    return container.items[index] if -len(container.items) <= index < len(container.items) else None


def _element_type(container: ir.Operand, key: ir.Operand) -> ir.Type:
    """The type of `container[key]` where the container's element types are known."""
    if type(container) is not ir.Value or type(key) is not ir.Const or type(key.value) is not int:
        return ir.UNKNOWN
    type_ = container.type
    if type(type_) is not ir.TupleType and type(type_) is not ir.ListType:
        return ir.UNKNOWN
    elements = type_.elements
    if elements is None:
        return ir.UNKNOWN
    index = key.value
    return elements[index] if -len(elements) <= index < len(elements) else ir.UNKNOWN


def _is_str_const(operand: ir.Operand) -> bool:
    return isinstance(operand, ir.Const) and type(operand.value) is str


def _operator_name(function: object, arity: int) -> str | None:
    """The `operator` function's name when `function` is one `ir.Operator` writes as syntax."""
    name = getattr(function, "__name__", None)
    if not isinstance(name, str) or getattr(operator, name, None) is not function:
        return None
    return name if name in ir.OPERATORS and ir.operator_arity(name) == arity else None


def runs_its_graph(module: object) -> bool:
    """Whether calling `module` runs its graph's code and nothing else.

    True for a GraphModule with no hooks, no `torch.compile`d call, and no
    class of its own that overrides `__call__` (GraphModule's per-instance
    class installs a wrapper that defers to the next `__call__` up the MRO).
    """
    if not isinstance(module, torch.fx.GraphModule):
        return False
    hooks = (
        module._forward_hooks,
        module._forward_pre_hooks,
        module._backward_hooks,
        module._backward_pre_hooks,
        torch.nn.modules.module._global_forward_hooks,
        torch.nn.modules.module._global_forward_pre_hooks,
        torch.nn.modules.module._global_backward_hooks,
        torch.nn.modules.module._global_backward_pre_hooks,
    )
    if any(hooks) or getattr(module, "_compiled_call_impl", None) is not None:
        return False
    for klass in type(module).__mro__:
        if klass.__qualname__.rpartition(".")[2] == "GraphModuleImpl":
            continue
        if "__call__" in vars(klass):
            return klass is torch.nn.Module
    return False


def python_call(obj: object) -> types.FunctionType | None:
    """The plain Python function that `obj(...)` runs, as `function(obj, ...)`; None where there is none.

    Python finds `__call__` on the type, never on the instance, walking the
    type's MRO the way this does (no `__getattr__` or `__getattribute__`
    takes part, and an instance attribute `__call__` is not seen), and calls a
    plain function found there with the object first. That function bound to
    the object is the same call without the type's slot lookup and argument
    tuple per call. None, so the object is called as itself, for:

    - `nn.Module`s: a `GraphModule` that only runs its graph is bound to its
      `forward` (`fast_callable`); any other module is called as a module,
      which torch's own tracing treats as one;
    - classes: calling one constructs an instance;
    - a `__call__` that is no plain function (a `staticmethod`,
      `classmethod`, `functools.partialmethod`, a callable object or any other
      descriptor), whose binding is the descriptor's own affair;
    - callables whose type is written in C (functions, builtins, bound
      methods, `functools.partial`): their call is already direct.
    """
    if isinstance(obj, (torch.nn.Module, type)):
        return None
    for klass in type(obj).__mro__:
        found = klass.__dict__.get("__call__")
        if found is not None:
            return found if type(found) is types.FunctionType else None
    return None


def fast_callable(module: Any) -> Any:
    """What the generated code calls for a submodule.

    A GraphModule whose call would only run its graph is called through its
    generated `forward`, skipping `nn.Module.__call__`'s hook checks. A lazy
    one (Dynamo's and `split_module`'s `_LazyGraphModule`) is compiled first:
    its stub `forward` would go back through `__call__` on every call.
    An instance of a class whose `__call__` is a plain Python function (vLLM's
    `PiecewiseBackend`) is called through that function bound to it, which is
    what calling it runs (see `python_call`). Both bindings are made once,
    like a `get_attr`'s: a `recompile()` or a new `__call__` on the class later
    is not seen. Anything else is called as it is, exactly as the interpreter
    calls it.
    """
    if not runs_its_graph(module):
        call = python_call(module)
        return module if call is None else types.MethodType(call, module)
    if isinstance(module, _LazyGraphModule):
        module.real_recompile()
    return module.forward


def lower(
    gm: torch.fx.GraphModule,
    submodules: Mapping[str, Callable[..., Any]] | None = None,
    *,
    name: str = "forward",
    inline: bool = False,
    unpack: bool = True,
) -> Lowered:
    """Lower `gm` to IR. `submodules` replaces `call_module` targets by name.

    With `inline`, each piece that is a plain `GraphModule` (and not replaced
    through `submodules`) is spliced into the function instead of called.
    With `unpack=False`, a piece's tuple read item by item stays a `GetItem`
    per read, where the node stands (vLLM's dialect writes them so), instead
    of one call with a result per item (see `_Lowering.unpack_reads`).

    Raises `CodegenError` naming the node for anything that cannot be lowered.
    """
    if not isinstance(gm, torch.fx.GraphModule):
        raise not_a_graph_module(gm)
    if not is_identifier(name):
        raise ValueError(f"function name {name!r} is not a Python identifier")
    submodules = dict(submodules or {})
    targets = {node.target for node in gm.graph.nodes if node.op == "call_module"} if submodules else set()
    unknown = sorted(set(submodules) - targets)
    if unknown:
        raise ValueError(f"submodules names targets that the graph never calls: {', '.join(map(repr, unknown))}")
    return _Lowering(gm, submodules, inline, unpack).run(name)
