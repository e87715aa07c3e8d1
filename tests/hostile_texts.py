"""Hostile code texts, by family: each is outside the loader's language and must be refused.

Each text would, if it ran as Python, open a file, import a module, run
code, reach a storage or torch's registries, or hang at load. The tests run
every one through `astgen.testing.audit`: refused, no audit event, nothing
imported. `{M}` stands for a marker file path (replaced, not formatted).
"""

from __future__ import annotations

PRELUDE = "p = __astgen_pieces__[0]\nc = __astgen_consts__[2]\nmm = torch.ops.aten.mm.default\n"

HOSTILE: dict[str, str] = {
    # ------------------------------------------------ tensor -> storage -> file, shared memory, memory
    "storage method": "def f(x):\n    s = x.untyped_storage()\n    return s\n",
    "storage of a const": PRELUDE + "def f(x):\n    s = c.untyped_storage()\n    return s\n",
    "typed storage": "def f(x):\n    s = x.storage()\n    return s\n",
    "private storage": "def f(x):\n    s = x._typed_storage()\n    return s\n",
    "storage from_file": "def f(x):\n    s = torch.UntypedStorage.from_file('{M}', True, 8)\n    return s\n",
    "storage via getattr": "def f(x):\n    s = getattr(x, 'untyped_storage')\n    return s\n",
    "storage via Tensor path": "def f(x):\n    s = torch.Tensor.untyped_storage(x)\n    return s\n",
    "shared filename": "def f(x):\n    s = x.untyped_storage()\n    t = s._new_shared_filename_cpu(8)\n    return t\n",
    "storage class shared filename": "def f(x):\n    s = torch.UntypedStorage._new_shared_filename_cpu(8)\n    return s\n",
    "torch.from_file": "def f(x):\n    return torch.from_file('{M}', True, 8)\n",
    "aten from_file": "def f(x):\n    return torch.ops.aten.from_file.default('{M}', True, 8)\n",
    "aten set_ to a storage": "def f(x, y):\n    return torch.ops.aten.set_.source_Tensor(x, y)\n",
    "share_memory_": "def f(x):\n    return x.share_memory_()\n",
    "numpy": "def f(x):\n    return x.numpy()\n",
    "tofile via numpy": "def f(x):\n    n = x.numpy()\n    return n.tofile('{M}')\n",
    "data_ptr": "def f(x):\n    return x.data_ptr()\n",
    "_reshape_alias_copy out of bounds": "def f(x):\n    y = torch.ops.aten._reshape_alias_copy.default(x, [1 << 20], [1])\n    return y\n",
    "sparse tensor writing out of bounds": (
        "def f(x):\n    i = torch.tensor([[100000]])\n    s = torch.ops.aten.sparse_coo_tensor.indices_size(i, x, [4])\n"
        "    return torch.ops.aten._to_dense.default(s)\n"
    ),
    "unchecked sparse tensor": (
        "def f(x):\n    i = torch.tensor([[100000]])\n    return torch.ops.aten._sparse_coo_tensor_unsafe.default(i, x, [4])\n"
    ),
    "sparse indices by their view": "def f(x):\n    return torch.ops.aten._indices.default(x)\n",
    "backward operator that reads out of bounds": (
        "def f(x):\n    n = torch.tensor([100000])\n"
        "    return torch.ops.aten._segment_reduce_backward.default(x, x, x, 'sum', lengths=n)\n"
    ),
    "nested tensor from raw parts": "def f(x):\n    return torch.ops.aten._nested_from_padded.default(x, x)\n",
    "an int as an operator's dtype": "def f(x):\n    return torch.ops.aten.empty.memory_format([2], dtype=100000)\n",
    "a computed int as an operator's dtype": (
        "def f(x):\n    n = x.numel()\n    return torch.ops.aten.sum.dim_IntList(x, [0], dtype=n)\n"
    ),
    "an int as a packet's dtype": "def f(x):\n    return torch.ops.aten.view(x, -100000)\n",
    "an int as an operator's dtype by position": "def f(x):\n    return torch.ops.aten.view.dtype(x, 44)\n",
    "functorch batching internals": "def f(x):\n    return torch.ops.aten._remove_batch_dim.default(x, 9, 9, 9)\n",
    "_reshape_alias out of bounds": "def f(x):\n    return torch.ops.aten._reshape_alias.default(x, [1 << 40], [1])\n",
    # ------------------------------------------------ formatting walks attributes at run time
    "str.format on a literal": "def f(x):\n    return '{0.__class__.__init__.__globals__}'.format(x)\n",
    "str.format on a value": "def f(x):\n    s = str(x)\n    t = s.format(x)\n    return t\n",
    "str.format by path": "def f(x):\n    return str.format('{0.__class__}', x)\n",
    "format_map": "def f(x):\n    s = str(x)\n    return s.format_map(x)\n",
    "format builtin": "def f(x):\n    return format(x, '')\n",
    "f-string": "def f(x):\n    return f'{x.__class__}'\n",
    "__format__": "def f(x):\n    return x.__format__('')\n",
    # ------------------------------------------------ names that would import while checking
    "torch._inductor": "def f(x):\n    return torch._inductor.config.fx_graph_cache(x)\n",
    "torch._dynamo in the prelude": "d = torch._dynamo.eval_frame.innermost_fn\ndef f(x):\n    return d(x)\n",
    "cpp_extension": "def f(x):\n    return torch.utils.cpp_extension.load('m', ['{M}'])\n",
    "codecache": "def f(x):\n    return torch._inductor.codecache.PyCodeCache.load('{M}')\n",
    "onnx": "def f(x):\n    return torch.onnx.export(x, x, '{M}')\n",
    "tensorboard": "def f(x):\n    return torch.utils.tensorboard.SummaryWriter('{M}')\n",
    "getattr of torch": "def f(x):\n    return getattr(torch, '_inductor')\n",
    # ------------------------------------------------ callees that call their argument
    "torch.vmap": "def f(x):\n    g = torch.vmap(torch.relu)\n    return g\n",
    "torch.func.functional_call": "def f(x):\n    return torch.func.functional_call(x, {}, (x,))\n",
    "torch.cond": "def f(x):\n    return torch.cond(True, torch.relu, torch.relu, (x,))\n",
    "higher_order.cond": "def f(x):\n    return torch.ops.higher_order.cond(True, torch.relu, torch.relu, (x,))\n",
    "checkpoint": "def f(x):\n    return torch.utils.checkpoint.checkpoint(torch.relu, x)\n",
    "functools.partial via torch": "def f(x):\n    return torch.functional.functools.partial(torch.relu, x)\n",
    "map": "def f(x):\n    return map(torch.relu, [x])\n",
    "filter": "def f(x):\n    return filter(torch.relu, [x])\n",
    "sorted key": "def f(x):\n    return sorted([x], key=torch.relu)\n",
    "max key": "def f(x):\n    return max([x], key=torch.relu)\n",
    "list.sort key": "def f(x):\n    y = list([x])\n    z = y.sort(key=torch.relu)\n    return z\n",
    "apply_": "def f(x):\n    return x.apply_(torch.relu)\n",
    "map_": "def f(x):\n    return x.map_(x, torch.relu)\n",
    "operator.methodcaller": "def f(x):\n    m = operator.methodcaller('untyped_storage')\n    return m\n",
    "operator.attrgetter": "def f(x):\n    return operator.attrgetter('__class__')(x)\n",
    "operator.call": "def f(x):\n    return operator.call(torch.relu, x)\n",
    "register_hook": "def f(x):\n    return x.register_hook(torch.relu)\n",
    "autograd Function": "def f(x):\n    return torch.autograd.Function.apply(x)\n",
    "calling a local": "def f(x):\n    y = torch.relu\n    return y(x)\n",
    "calling a literal": "def f(x):\n    return 'os'(x)\n",
    "calling a vLLM const": "def execution_fn(x, *, __vllm_submods__):\n    return __vllm_consts__[0](x)\n",
    # ------------------------------------------------ operator objects expose torch's registries
    "entry named like a global": "f = __astgen_consts__[0]\ndef f(x):\n    return f(x)\n",
    "entry named like a later global": "def f(x):\n    return f(x)\nf = __astgen_consts__[0]\n",
    "py_kernels": PRELUDE + "def f(x):\n    k = mm.py_kernels\n    return k\n",
    "py_kernels clear": PRELUDE + "def f(x):\n    k = mm.py_kernels\n    d = k.clear()\n    return d\n",
    "py_kernels by path": "def f(x):\n    return torch.ops.aten.mm.default.py_kernels.clear()\n",
    "_dispatch_cache": PRELUDE + "def f(x):\n    return mm._dispatch_cache.clear()\n",
    "py_impl": PRELUDE + "def f(x):\n    return mm.py_impl(x)\n",
    "redispatch": PRELUDE + "def f(x):\n    return mm.redispatch(x, x)\n",
    "getattr of an op": PRELUDE + "def f(x):\n    return getattr(mm, 'py_kernels')\n",
    "op packet overloads": "def f(x):\n    return torch.ops.aten.mm.overloads()\n",
    "op namespace": "def f(x):\n    return torch.ops.aten.__dict__\n",
    "load_library": "def f(x):\n    return torch.ops.load_library('{M}')\n",
    "import_module": "def f(x):\n    return torch.ops.import_module('os')\n",
    "piece attribute": PRELUDE + "def f(x):\n    return p.forward(x)\n",
    "piece as a value": PRELUDE + "def f(x):\n    return torch.relu(p)\n",
    # ------------------------------------------------ defaults and module level run at load
    "default calls open": "def f(x=open('{M}', 'w')):\n    return x\n",
    "default hangs": "def f(x=sum(range(10 ** 12))):\n    return x\n",
    "default calls a torch function": "def f(x=torch.ones(3)):\n    return x\n",
    "default is a piece": PRELUDE + "def f(x, y=p):\n    return x\n",
    "default is an expression": "def f(x, y=2 ** 100000000):\n    return x\n",
    "kw default calls": "def f(*a, k=len([1] * 10 ** 9)):\n    return a\n",
    "module-level call": "open('{M}', 'w')\ndef f(x):\n    return x\n",
    "prelude call": "y = open('{M}', 'w')\ndef f(x):\n    return x\n",
    "prelude of a table": "y = __astgen_pieces__\ndef f(x):\n    return x\n",
    "prelude of a table method": "y = __astgen_consts__.pop\ndef f(x):\n    return x\n",
    "decorator": "@open\ndef f(x):\n    return x\n",
    "annotation": "def f(x: open('{M}', 'w')):\n    return x\n",
    "return annotation": "def f(x) -> open('{M}', 'w'):\n    return x\n",
    # ------------------------------------------------ the object model
    "__class__": "def f(x):\n    return x.__class__\n",
    "__subclasses__": "def f(x):\n    return ().__class__.__bases__[0].__subclasses__()\n",
    "getattr dunder": "def f(x):\n    return getattr(x, '__class__')\n",
    "getattr computed": "def f(x, n):\n    return getattr(x, n)\n",
    "__reduce_ex__": "def f(x):\n    return x.__reduce_ex__(2)\n",
    "__dict__": "def f(x):\n    return x.__dict__\n",
    "__globals__ of a const": PRELUDE + "def f(x):\n    return c.__init__.__globals__\n",
    "type": "def f(x):\n    return type(x)\n",
    "tensor.type by name": "def f(x):\n    return x.type('os.system')\n",
    "vars": "def f(x):\n    return vars(x)\n",
    "globals": "def f(x):\n    return globals()\n",
    "__builtins__": "def f(x):\n    return __builtins__\n",
    "dunder local": "def f(x):\n    __class__ = x\n    return __class__\n",
    "shadowed builtin": "def f(x):\n    len = torch.relu(x)\n    return len(x)\n",
    "shadowed root": "torch = __astgen_consts__[0]\ndef f(x):\n    return x\n",
    "setattr": "def f(x):\n    return setattr(x, 'y', 1)\n",
    "object.__getattribute__": "def f(x):\n    return object.__getattribute__(x, '__class__')\n",
    # ------------------------------------------------ code, files, processes
    "exec": "def f(x):\n    return exec(\"open('{M}', 'w')\")\n",
    "eval": "def f(x):\n    return eval(\"open('{M}', 'w')\")\n",
    "compile": "def f(x):\n    return compile('1', '{M}', 'eval')\n",
    "open": "def f(x):\n    return open('{M}', 'w')\n",
    "__import__": "def f(x):\n    return __import__('os').system('touch {M}')\n",
    "import os": "import os\ndef f(x):\n    return os.system('touch {M}')\n",
    "from import": "from os import system\ndef f(x):\n    return system('touch {M}')\n",
    "import as": "import torch as os\ndef f(x):\n    return x\n",
    "breakpoint": "def f(x):\n    return breakpoint()\n",
    "print": "def f(x):\n    return print(x)\n",
    "input": "def f(x):\n    return input()\n",
    "torch.load": "def f(x):\n    return torch.load('{M}')\n",
    "torch.save": "def f(x):\n    return torch.save(x, '{M}')\n",
    "torch.jit.load": "def f(x):\n    return torch.jit.load('{M}')\n",
    "torch.hub.load": "def f(x):\n    return torch.hub.load('{M}', 'm')\n",
    "torch.package": "def f(x):\n    return torch.package.PackageImporter('{M}')\n",
    "import_ir_module": "def f(x):\n    return torch.import_ir_module(x, '{M}', x, x)\n",
    "torch.serialization.os": "def f(x):\n    return torch.serialization.os.system('touch {M}')\n",
    "torch.serialization.pickle": "def f(x):\n    return torch.serialization.pickle.loads(b'')\n",
    "torch.multiprocessing": "def f(x):\n    return torch.multiprocessing.Process()\n",
    "torch._C private": "def f(x):\n    return torch._C._jit_pass_lint(x)\n",
    "manual_seed": "def f(x):\n    return torch.manual_seed(0)\n",
    "set_default_dtype": "def f(x):\n    return torch.set_default_dtype(x)\n",
    "bare torch": "def f(x):\n    return torch\n",
    "dotted name as a value": "def f(x):\n    return torch.relu\n",
    # ------------------------------------------------ frames and statements outside the IR
    "lambda": "def f(x):\n    y = (lambda: open('{M}', 'w'))()\n    return y\n",
    "list comprehension": "def f(x):\n    return [open('{M}', 'w') for _ in x]\n",
    "generator": "def f(x):\n    return list(open('{M}', 'w') for v in x)\n",
    "set comprehension": "def f(x):\n    return {v for v in x}\n",
    "walrus": "def f(x):\n    return (y := x)\n",
    "nested def": "def f(x):\n    def g():\n        return open('{M}', 'w')\n    return g()\n",
    "class": "class C:\n    pass\ndef f(x):\n    return x\n",
    "async def": "async def f(x):\n    return x\n",
    "expression statement": "def f(x):\n    open('{M}', 'w')\n    return x\n",
    "if": "def f(x):\n    if x:\n        return x\n    return x\n",
    "for": "def f(x):\n    for v in x:\n        pass\n    return x\n",
    "while": "def f(x):\n    while x:\n        pass\n    return x\n",
    "with": "def f(x):\n    with open('{M}', 'w'):\n        return x\n",
    "try": "def f(x):\n    try:\n        return x\n    finally:\n        open('{M}', 'w')\n",
    "raise": "def f(x):\n    raise x\n    return x\n",
    "assert": "def f(x):\n    assert x\n    return x\n",
    "global": "def f(x):\n    global y\n    return x\n",
    "augmented assignment": "def f(x):\n    x += 1\n    return x\n",
    "attribute assignment": "def f(x):\n    x.y = 1\n    return x\n",
    "item assignment": "def f(x):\n    x[0] = 1\n    return x\n",
    "starred target": "def f(x):\n    a, *b = x\n    return a\n",
    "yield": "def f(x):\n    y = yield x\n    return y\n",
    "if expression": "def f(x):\n    return x if x else x\n",
    "boolean operator": "def f(x):\n    return x and open('{M}', 'w')\n",
    "is comparison": "def f(x):\n    return x is None\n",
    "chained comparison": "def f(x):\n    return 0 < x < 1\n",
    "** of a name": "def f(x):\n    return torch.relu(**x)\n",
    "dict unpacking": "def f(x):\n    return {**x}\n",
    "starred in a tuple": "def f(x):\n    return (*x,)\n",
    "no return": "def f(x):\n    y = x\n",
    "statement after return": "def f(x):\n    return x\n    open('{M}', 'w')\n",
    "two entries": "def f(x):\n    return x\ndef g(x):\n    return x\n",
    "**kwargs parameter": "def f(**x):\n    return x\n",
    "undefined name": "def f(x):\n    return secret(x)\n",
    # ------------------------------------------------ vLLM's dialect, abused
    "submods without the parameter": "def f(x):\n    return __vllm_submods__[0](x)\n",
    "submods by a computed index": "def execution_fn(x, *, __vllm_submods__):\n    return __vllm_submods__[x](x)\n",
    "submods as a value": "def execution_fn(x, *, __vllm_submods__):\n    return __vllm_submods__\n",
    "consts by a computed index": "def f(x):\n    return __vllm_consts__[x]\n",
    "consts table as a value": "def f(x):\n    return __vllm_consts__\n",
    "inlined piece that recurses": (
        "def __vllm_inlined_submods__0(x):\n    y = __vllm_inlined_submods__0(x)\n    return y\n"
        "def execution_fn(x, *, __vllm_submods__):\n    return __vllm_inlined_submods__0(x)\n"
    ),
    "inlined piece with open": (
        "def __vllm_inlined_submods__0(x):\n    return open('{M}', 'w')\n"
        "def execution_fn(x, *, __vllm_submods__):\n    return x\n"
    ),
    "inlined piece with a default": (
        "def __vllm_inlined_submods__0(x, y=open('{M}', 'w')):\n    return x\n"
        "def execution_fn(x, *, __vllm_submods__):\n    return __vllm_inlined_submods__0(x)\n"
    ),
    # ------------------------------------------------ parsing itself
    "syntax error": "def f(x:\n",
    "null byte": "def f(x):\n    return x\0\n",
    "deep nesting": "def f(x):\n    return " + "-" * 5000 + "x\n",
    "huge literal": "def f(x):\n    return " + "9" * 5000 + "\n",
}

# Texts a refusal-minded reader might doubt, which are in the language: they run, and raise no event.
ACCEPTED: dict[str, str] = {
    "percent formatting of a literal": "def f(x):\n    return '%s' % x\n",
    "operators on literals": "def f(x):\n    y = 2 ** 10\n    return (x * y, -1.5, 1e309, 0.0 - 2j)\n",
    "str of a value": "def f(x):\n    return str(x)\n",
    "split of a str value": "def f(x):\n    s = str(x)\n    return s.split()\n",
    "a dtype by its repr": "def f(x):\n    return x.to(dtype=torch.float16)\n",
    "an aten op with a private name": "def f(x):\n    return torch.ops.aten._to_copy.default(x, dtype=torch.float16)\n",
    "a private path to a public function": "def f(q):\n    return torch._C._nn.gelu(q)\n",
    "tensor attributes": "def f(x):\n    return (x.shape, getattr(x, 'dtype'), x.device)\n",
    "a piece with key=": "p = __astgen_pieces__[0]\ndef f(x):\n    return p(x, key=x)\n",
    # torch's C code imports `torch.<device>` through the calling frame's builtins: the loaded
    # function's import only hands out modules imported already, so nothing is searched for.
    "a device torch would import a module for": "def f(x):\n    return x.to('hpu')\n",
    "a layout by its repr": "def f(x):\n    return torch.empty_like(x, layout=torch.strided)\n",
}
