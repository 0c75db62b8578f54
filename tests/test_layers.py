"""The layers of DESIGN.md: data flows down (backends -> tensor -> autograd -> ops -> nn/optim ->
models -> cli). Every ``import`` in genesis, function-local ones included, is checked; and an op
declares its Tensor methods in its own module."""
import ast
import os
import types

import numpy as np

import genesis
from genesis.autograd import Function
from genesis.ops._methods import install

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "genesis")

# lowest layer first; a module may import its own layer and the layers below it
LAYERS = [
    ("genesis.dtypes", "genesis.device", "genesis.backends", "genesis._broadcast",
     "genesis._atomic", "genesis.energy"),
    ("genesis.tensor", "genesis._format", "genesis.random", "genesis.creation", "genesis.cuda"),
    ("genesis.autograd",),
    # amp: the autocast policy applied at each op's entry; distributed: differentiable collectives
    ("genesis.ops", "genesis.amp", "genesis.distributed"),
    ("genesis._tensor_methods",),  # operators and helpers bound onto Tensor, above the ops
    ("genesis.nn", "genesis.optim", "genesis.utils", "genesis.serialization"),
    ("genesis.models",),
    ("genesis.train", "genesis.chat", "genesis.dashboard", "genesis.commands", "genesis.bench",
     "genesis.cli", "genesis.__main__"),
]


def _layer(module):
    if module == "genesis":  # the package re-exports everything: only the top layer uses it
        return len(LAYERS) - 1
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py")


def _modules():
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                yield (rel[:-len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(module, path):
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.startswith("genesis"):
                for alias in node.names:
                    yield node.lineno, base, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("genesis"):
                    yield node.lineno, alias.name, None


def test_every_import_points_down_the_layers():
    known = dict(_modules())
    upward = []
    for module, path in known.items():
        for line, base, name in _imports(module, path):
            target = f"{base}.{name}" if name and f"{base}.{name}" in known else base
            if _layer(target) > _layer(module):
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_an_op_module_declares_its_tensor_methods():
    class Twice(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    def twice(input):
        """``2 * input``."""
        return Twice.apply(input)

    module = types.SimpleNamespace(twice=twice, TENSOR_METHODS="twice", INPLACE_METHODS="twice")
    install(module)
    try:
        x = genesis.tensor([1.0, 2.0], requires_grad=True)
        y = x.twice()
        y.sum().backward()
        assert y.tolist() == [2.0, 4.0] and x.grad.tolist() == [2.0, 2.0]
        z = genesis.tensor([1.0, 3.0])
        alias = z.detach()
        assert z.twice_() is z and alias.tolist() == [2.0, 6.0]
    finally:
        del genesis.Tensor.twice, genesis.Tensor.twice_


def test_op_methods_are_the_ops_themselves():
    from genesis import ops
    for module in (ops.elementwise, ops.reduction, ops.movement, ops.indexing, ops.linalg, ops.nn):
        for name in module.TENSOR_METHODS.split():
            assert getattr(genesis.Tensor, name) is getattr(module, name), name
    x = genesis.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(dim=1).tolist() == [3.0, 12.0] and x.exp_() is x
