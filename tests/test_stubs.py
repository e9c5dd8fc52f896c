"""Types: the ``.pyi`` stubs of the compiled kernels match both twins; the public API is annotated.

Each ``src/joblite/_ext/<name>.pyi`` declares what type checkers see of the
kernel ``<name>``, whichever twin runs.  For every function, class and method a
stub declares, the parameters (names, kinds, defaults) must be those of the
pure twin's object, and of the compiled twin's where Cython exposes a
signature (its functions and methods; a class's constructor through the
signature ``embedsignature`` writes at the head of its docstring).  Constants
the stub gives a value must have it in the twins, and every public name of the
pure twin must be in the stub.

What mypy checks of users' code depends on the public API being annotated in
full and on ``joblite/__init__.py`` showing type checkers its lazy attributes:
both are checked at the end.
"""

import ast
import importlib
import inspect
import pathlib

import pytest

from joblite import _impl

STUB_DIR = pathlib.Path(_impl.__file__).parent / "_ext"
KERNELS = _impl._KERNELS  # every kernel module joblite loads: each needs its stub

_NO_DEFAULT = inspect.Parameter.empty
_KINDS = inspect.Parameter


class _Unresolved:
    """A stub default that is neither a literal nor a constant of the stub (e.g. ``...``)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"<unresolved default {self.text}>"


def _stub_constants(tree):
    """Module-level ``NAME: Final = literal`` (or ``NAME = literal``) of a stub, as a dict."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            targets, value = node.targets, node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            continue  # a type alias, not a constant
        for target in targets:
            constants[target.id] = literal
    return constants


def _default(node, constants):
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _Unresolved(ast.unparse(node))


def stub_parameters(function, constants):
    """``[(name, kind, default)]`` of a stub's ``def``, in order; default is ``inspect.Parameter.empty`` if none."""
    args = function.args
    positional = [(a, _KINDS.POSITIONAL_ONLY) for a in args.posonlyargs]
    positional += [(a, _KINDS.POSITIONAL_OR_KEYWORD) for a in args.args]
    defaults = [_NO_DEFAULT] * (len(positional) - len(args.defaults)) + [_default(d, constants) for d in args.defaults]
    params = [(a.arg, kind, default) for (a, kind), default in zip(positional, defaults)]
    if args.vararg is not None:
        params.append((args.vararg.arg, _KINDS.VAR_POSITIONAL, _NO_DEFAULT))
    for a, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append((a.arg, _KINDS.KEYWORD_ONLY, _NO_DEFAULT if default is None else _default(default, constants)))
    if args.kwarg is not None:
        params.append((args.kwarg.arg, _KINDS.VAR_KEYWORD, _NO_DEFAULT))
    return params


def signature_parameters(signature):
    """``[(name, kind, default)]`` of an ``inspect.Signature``."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def _same(stub_params, actual_params):
    if len(stub_params) != len(actual_params):
        return False
    for (name, kind, default), (a_name, a_kind, a_default) in zip(stub_params, actual_params):
        if name != a_name or kind != a_kind:
            return False
        if (default is _NO_DEFAULT) != (a_default is _NO_DEFAULT):
            return False
        if default is not _NO_DEFAULT and (type(default) is not type(a_default) or default != a_default):
            return False
    return True


def _show(params):
    parts = []
    for name, kind, default in params:
        text = {_KINDS.VAR_POSITIONAL: "*", _KINDS.VAR_KEYWORD: "**"}.get(kind, "") + name
        if kind is _KINDS.POSITIONAL_ONLY:
            text += "/"
        elif kind is _KINDS.KEYWORD_ONLY:
            text = "kw:" + text
        if default is not _NO_DEFAULT:
            text += f"={default!r}"
        parts.append(text)
    return "(" + ", ".join(parts) + ")"


def _cython_signature(obj):
    """The signature of a compiled twin's object, or None where Cython exposes none.

    Cython's own functions and methods carry one; slot wrappers (a cdef
    class's ``__init__``, ``__call__``...) show only ``(self, /, *args,
    **kwargs)`` and are skipped.
    """
    if type(obj).__name__ not in ("cython_function_or_method", "fused_cython_function", "function"):
        return None
    return inspect.signature(obj)


def _embedded_constructor(cls, constants):
    """``[(name, kind, default)]`` of a compiled class's constructor, from the signature
    ``embedsignature`` puts on the first line of its docstring (``Name(a, Py_ssize_t b=DEFAULT)``),
    with ``self`` first; None when the docstring does not start with one."""
    first = (cls.__doc__ or "").split("\n", 1)[0]
    if not (first.startswith(cls.__name__ + "(") and first.endswith(")")):
        return None
    params = [("self", _KINDS.POSITIONAL_OR_KEYWORD, _NO_DEFAULT)]
    inner = first[len(cls.__name__) + 1 : -1]
    for part in filter(None, (p.strip() for p in inner.split(","))):
        declared, _, default = part.partition("=")
        name = declared.split()[-1]  # drop the C type, if any
        value = _NO_DEFAULT if not default else _default(ast.parse(default.strip(), mode="eval").body, constants)
        params.append((name, _KINDS.POSITIONAL_OR_KEYWORD, value))
    return params


def stub_problems(stub_text, module, *, compiled=False):
    """Every way `module` differs from the stub `stub_text`; an empty list when they agree.

    Parameters
    ----------
    stub_text : str
        Source of a ``.pyi`` file.
    module : module
        A twin of the kernel it describes.
    compiled : bool
        Whether `module` is the compiled twin: objects without a Cython
        signature are then skipped (a pure twin's object must have one).

    Returns
    -------
    list of str
        One message per difference, naming the object.
    """
    tree = ast.parse(stub_text)
    constants = _stub_constants(tree)
    problems = []
    compared = 0

    def compare(where, node, obj):
        nonlocal compared
        expected = stub_parameters(node, constants)
        actual = _cython_signature(obj) if compiled else inspect.signature(obj)
        if actual is None:
            return
        actual = signature_parameters(actual)
        compared += 1
        if not _same(expected, actual):
            problems.append(f"{where}: stub {_show(expected)}, {module.__name__} {_show(actual)}")

    for node in tree.body:
        name = getattr(node, "name", None)
        if name is None or name.startswith("_"):
            continue  # helpers of the stub itself (protocols, aliases) are not the module's
        if not hasattr(module, name):
            problems.append(f"{name}: declared by the stub, missing from {module.__name__}")
            continue
        obj = getattr(module, name)
        if isinstance(node, ast.FunctionDef):
            compare(name, node, obj)
        elif isinstance(node, ast.ClassDef):
            if not inspect.isclass(obj):
                problems.append(f"{name}: a class in the stub, {type(obj).__name__} in {module.__name__}")
                continue
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                where = f"{name}.{item.name}"
                member = inspect.getattr_static(obj, item.name, None)
                if member is None:
                    problems.append(f"{where}: declared by the stub, missing from {module.__name__}")
                    continue
                if compiled and item.name == "__init__" and _cython_signature(member) is None:
                    embedded = _embedded_constructor(obj, constants)
                    if embedded is not None:
                        compared += 1
                        expected = stub_parameters(item, constants)
                        if not _same(expected, embedded):
                            problems.append(f"{where}: stub {_show(expected)}, {module.__name__} {_show(embedded)}")
                    continue
                compare(where, item, member)
    for name, value in constants.items():
        if name.startswith("_"):
            continue
        if not hasattr(module, name):
            problems.append(f"{name}: declared by the stub, missing from {module.__name__}")
        elif type(getattr(module, name)) is not type(value) or getattr(module, name) != value:
            problems.append(f"{name}: {value!r} in the stub, {getattr(module, name)!r} in {module.__name__}")
    if not compiled and compared == 0 and any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body):
        problems.append(f"no signature of {module.__name__} was compared")
    return problems


def public_names(module):
    """The names a pure twin's module defines at its top level, without a leading underscore."""
    tree = ast.parse(inspect.getsource(module))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def declared_names(stub_text):
    """The top-level names a stub declares, without a leading underscore."""
    tree = ast.parse(stub_text)
    names = set(_stub_constants(tree))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def _stub(kernel):
    return (STUB_DIR / f"{kernel}.pyi").read_text(encoding="utf-8")


@pytest.mark.parametrize("kernel", KERNELS)
def test_stub_matches_pure_twin(kernel):
    pure = importlib.import_module(f"joblite._pure.{kernel}")
    assert stub_problems(_stub(kernel), pure) == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_stub_declares_every_public_name_of_the_pure_twin(kernel):
    pure = importlib.import_module(f"joblite._pure.{kernel}")
    missing = public_names(pure) - declared_names(_stub(kernel))
    assert not missing, f"{kernel}.pyi lacks {sorted(missing)}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_stub_matches_compiled_twin(kernel):
    if "ext" not in _impl.available_twins():
        pytest.skip("the compiled twin is not built")
    compiled = importlib.import_module(f"joblite._ext.{kernel}")
    assert stub_problems(_stub(kernel), compiled, compiled=True) == []


def test_compiled_signatures_are_compared():
    """Cython exposes the signatures the comparison relies on (else it would compare nothing)."""
    if "ext" not in _impl.available_twins():
        pytest.skip("the compiled twin is not built")
    hasher = importlib.import_module("joblite._ext._hasher")
    assert _cython_signature(hasher.StreamHasher.update) is not None
    assert _embedded_constructor(hasher.StreamHasher, _stub_constants(ast.parse(_stub("_hasher")))) is not None
    codec = importlib.import_module("joblite._ext._codec")
    assert _cython_signature(codec.shuffle) is not None


WRONG_STUBS = {
    "a renamed parameter": ("def preallocate(fd: int, size: int) -> bool: ...", "preallocate"),
    "a missing parameter": ("def preallocate(fd: int) -> bool: ...", "preallocate"),
    "a default the twin lacks": ("def preallocate(fd: int, length: int = 0) -> bool: ...", "preallocate"),
    "a keyword-only parameter": ("def preallocate(fd: int, *, length: int) -> bool: ...", "preallocate"),
    "a positional-only parameter": ("def preallocate(fd: int, length: int, /) -> bool: ...", "preallocate"),
    "a name the twin lacks": (
        "def preallocate(fd: int, length: int) -> bool: ...\ndef reserve() -> None: ...",
        "reserve",
    ),
}


@pytest.mark.parametrize("wrong", sorted(WRONG_STUBS))
def test_checker_catches_a_wrong_function_stub(wrong):
    text, culprit = WRONG_STUBS[wrong]
    problems = stub_problems(text, importlib.import_module("joblite._pure._fileio"))
    assert len(problems) == 1 and problems[0].startswith(culprit + ":"), problems


def test_checker_catches_wrong_methods_defaults_and_constants():
    pure = importlib.import_module("joblite._pure._hasher")
    good = _stub("_hasher")
    assert stub_problems(good, pure) == []
    cases = {
        'root: str = "obj"': ('root: str = "object"', "StreamHasher.update"),
        "max_depth: int = MAX_DEPTH": ("max_depth: int = MAX_REDUCTIONS", "StreamHasher.__init__"),
        "MAX_DEPTH: Final = 100000": ("MAX_DEPTH: Final = 100001", "MAX_DEPTH"),
        "def hexdigest(self) -> str: ...": ("def hexdigest(self, upper: bool) -> str: ...", "StreamHasher.hexdigest"),
    }
    for right, (wrong, culprit) in cases.items():
        assert right in good, right
        problems = stub_problems(good.replace(right, wrong), pure)
        # a wrong constant is reported with the defaults that name it
        assert culprit in {p.split(":")[0] for p in problems}, (wrong, problems)


def test_checker_catches_a_public_name_the_stub_lacks():
    pure = importlib.import_module("joblite._pure._codec")
    text = _stub("_codec").replace("def pack_chunks(sizes: Iterable[int]) -> bytes: ...", "")
    assert public_names(pure) - declared_names(text) == {"pack_chunks"}


def test_a_stub_default_must_be_stated():
    """``...`` as a default says nothing the test can compare: it is reported, not taken as a match."""
    pure = importlib.import_module("joblite._pure._hasher")
    text = _stub("_hasher").replace('root: str = "obj"', "root: str = ...")
    assert [p.split(":")[0] for p in stub_problems(text, pure)] == ["StreamHasher.update"]


# -- the public API, as type checkers see it --------------------------------------------------
_PUBLIC_DUNDERS = ("__init__", "__call__", "__enter__", "__exit__")


def annotation_gaps(obj, where):
    """``where(param)`` for each parameter of function `obj` without a type; ``where -> ?`` without a return type."""
    signature = inspect.signature(obj)
    gaps = [
        f"{where}({p.name})"
        for i, p in enumerate(signature.parameters.values())
        if p.annotation is p.empty and not (i == 0 and p.name in ("self", "cls"))
    ]
    if signature.return_annotation is signature.empty:
        gaps.append(f"{where} -> ?")
    return gaps


def public_api_gaps():
    """The gaps of every function and public method that ``joblite.__all__`` names and joblite defines."""
    import joblite

    gaps = []
    for name in joblite.__all__:
        obj = getattr(joblite, name)
        if not getattr(obj, "__module__", "").startswith("joblite.") or obj is joblite.delayed:
            continue  # loky's wrap_non_picklable_objects; delayed is a kernel's class, typed by its stub
        if inspect.isfunction(obj):
            gaps += annotation_gaps(obj, name)
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in _PUBLIC_DUNDERS:
                    continue
                if isinstance(member, property):
                    gaps += annotation_gaps(member.fget, f"{name}.{attr}")
                elif inspect.isfunction(member):
                    gaps += annotation_gaps(member, f"{name}.{attr}")
    return gaps


def test_public_api_is_annotated():
    assert public_api_gaps() == []


def test_annotation_gaps_are_found():
    def untyped(a, b: int = 0): ...

    def typed(self, a: int, *args: str, **kwargs: object) -> None: ...

    assert annotation_gaps(untyped, "untyped") == ["untyped(a)", "untyped -> ?"]
    assert annotation_gaps(typed, "typed") == []


def test_type_checkers_see_every_lazy_attribute():
    """``joblite/__init__.py`` imports, under ``if TYPE_CHECKING:``, each name of ``_LAZY`` from its module."""
    import joblite

    tree = ast.parse(inspect.getsource(joblite))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: re-exported as itself (import X as X)"
                seen[alias.name] = module
    assert seen == joblite._LAZY


def test_hash_name_type_lists_the_hash_names():
    """``hash_name``'s Literal type (in ``joblite/_typing.py``, which only type checkers import) is HASH_NAMES."""
    from joblite import hashing

    tree = ast.parse((STUB_DIR.parent / "_typing.py").read_text(encoding="utf-8"))
    value = next(n.value for n in tree.body if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["HashName"])
    assert tuple(ast.literal_eval(e) for e in value.slice.elts) == hashing.HASH_NAMES
