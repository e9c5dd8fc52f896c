"""What ``Memory`` needs to know about a cached function: its name, its code and its arguments.

- :func:`function_name` gives the stable identity under which a function's
  entries are stored (module and qualified name);
- :func:`code_digest` gives a digest of the function's code that changes when
  its body, defaults or signature change, and not when only comments, blank
  lines, whitespace or the docstring change;
- :class:`CallBinder` binds positional and keyword arguments to parameter
  names once per call, with the signature read once per function;
- :func:`format_call`, :func:`format_duration` and :func:`format_loading`
  write the ``[Memory]`` lines as joblib writes them, a call shown with its
  arguments as passed (:func:`display_name`, :func:`format_signature`).
"""

import ast
import inspect
import os
import sys
import textwrap
import time
import types

from .logger import format_time, pformat

__all__ = [
    "function_name",
    "display_name",
    "code_digest",
    "CallBinder",
    "format_arg",
    "format_signature",
    "format_call",
    "format_duration",
    "format_loading",
    "input_reprs",
    "CODE_FORMAT",
]

#: Version of how code digests are computed; a new version invalidates cached results once.
CODE_FORMAT = 1


def function_name(func):
    """Return ``(module, name)``: where a function's cache entries are filed.

    `module` is the function's ``__module__``; for functions of the script run
    as ``__main__`` it is ``'__main__.<script stem>'`` so that two scripts
    sharing a cache folder do not share entries.  `name` is the qualified
    name; a lambda's name gets its first line number (``<lambda>-L12``) so
    that two lambdas of one module are told apart.

    Parameters
    ----------
    func : callable

    Returns
    -------
    tuple of str
    """
    target = getattr(func, "__func__", func)  # bound methods are filed under their function
    module = getattr(target, "__module__", None) or type(target).__module__
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            module = "__main__." + os.path.splitext(os.path.basename(main_file))[0]
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__qualname__
    code = getattr(target, "__code__", None)
    if "<lambda>" in name and code is not None:
        name = f"{name}-L{code.co_firstlineno}"
    return module, name


def _strip_docstring(body):
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:]
    return body


def _source_text(func):
    """The canonical text of `func`'s definition, or None when its source cannot be read.

    The definition is parsed and dumped without positions, so comments, blank
    lines and whitespace do not show; the docstring and the decorators are
    dropped (decorators are above the cache, not inside the function).
    """
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    if (
        len(tree.body) != 1
        or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef))
        or tree.body[0].name != func.__name__
    ):
        return None  # a lambda, or source that is not this function's definition alone
    node = tree.body[0]
    node.decorator_list = []
    node.body = _strip_docstring(node.body) or [ast.Pass()]
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _code_without_docstring(func):
    code = func.__code__
    consts = code.co_consts
    if func.__doc__ is not None and consts and consts[0] == func.__doc__:
        code = code.replace(co_consts=(None,) + consts[1:])  # as compiled without a docstring
    return code


def code_digest(func, digest):
    """Return ``(digest, source)`` identifying the code of `func`.

    Parameters
    ----------
    func : callable
        A Python function (bound methods count as their function).  Other
        callables (builtins, callable objects, ``functools.partial``) have no
        code of their own to follow and get the empty digest ``''``.
    digest : callable
        ``digest(obj) -> str``: :func:`joblite.hash`.

    Returns
    -------
    digest : str
        Changes when the function's body, defaults or signature change; not
        when only comments, blank lines, whitespace or the docstring do.  It
        is computed from the parsed source when the source can be read, else
        from the code object (bytecode, constants and names, not line numbers),
        which is stable across processes and ``PYTHONHASHSEED``.
    source : str or None
        The source text, kept next to the entries for people to read.
    """
    target = getattr(func, "__func__", func)
    if not isinstance(target, types.FunctionType):
        return "", None
    text = _source_text(target)
    if text is not None:
        return digest(("source", text)), inspect.getsource(target)
    return digest(("code", _code_without_docstring(target), target.__defaults__, target.__kwdefaults__)), None


class CallBinder:
    """Binds call arguments to the parameters of a function, its signature read once.

    Parameters
    ----------
    func : callable
        The function; its signature comes from :func:`inspect.signature`.
    ignore : list of str, optional
        Parameter names left out of :meth:`key_values`.  A name that is not a
        parameter is allowed when the function takes ``**kwargs``: it is then
        a keyword dropped from them.

    Raises
    ------
    ValueError
        If a name in `ignore` is not a parameter of `func` (and `func` takes
        no ``**kwargs``), or the signature of `func` cannot be read.
    """

    def __init__(self, func, ignore=()):
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot read the signature of {func!r}: {exc}") from None
        kinds = inspect.Parameter
        self.names = []
        self._positional = []
        self._positional_index = {}
        self._keyword_only = []
        self._defaults = {}
        self._var_positional = self._var_keyword = False
        for parameter in self.signature.parameters.values():
            self.names.append(parameter.name)
            if parameter.default is not parameter.empty:
                self._defaults[parameter.name] = parameter.default
            if parameter.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
                if parameter.kind is kinds.POSITIONAL_OR_KEYWORD:
                    self._positional_index[parameter.name] = len(self._positional)
                self._positional.append(parameter.name)
            elif parameter.kind is kinds.VAR_POSITIONAL:
                self._var_positional = True
            elif parameter.kind is kinds.KEYWORD_ONLY:
                self._keyword_only.append(parameter.name)
            else:
                self._var_keyword = True
        self._keyword_only_set = frozenset(self._keyword_only)
        ignore = list(ignore or ())
        for name in ignore:
            if not isinstance(name, str):
                raise ValueError(f"ignore={ignore!r}: {name!r} is not a parameter name")
            if name not in self.names and not self._var_keyword:
                raise ValueError(
                    f"ignore={ignore!r}: {name!r} is not a parameter of "
                    f"{getattr(func, '__qualname__', func)}{self.signature}"
                )
        self._ignored_keywords = frozenset(name for name in ignore if name not in self.names)
        self._kept = tuple(index for index, name in enumerate(self.names) if name not in ignore)
        self._var_keyword_index = len(self.names) - 1 if self._var_keyword else None
        # joblib's order of the arguments in its metadata: see joblib_arguments.
        parameters = list(self.signature.parameters.values())
        with_default = [p.name for p in parameters if p.default is not p.empty]
        order = with_default + [
            p.name
            for p in parameters
            if p.name not in with_default and p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        ]
        if self._var_positional:
            order.append("*")
        order += [p.name for p in parameters if p.name not in order and p.kind is kinds.KEYWORD_ONLY]
        if self._var_keyword:
            order.append("**")
        index = {p.name: i for i, p in enumerate(parameters)}
        index.update(
            {
                "*": next((i for i, p in enumerate(parameters) if p.kind is kinds.VAR_POSITIONAL), None),
                "**": self._var_keyword_index,
            }
        )
        self._joblib_order = tuple((key, index[key]) for key in order if key not in ignore)

    def values(self, args, kwargs):
        """Return the value of every parameter, in signature order, defaults filled in.

        ``*args`` parameters get a tuple, ``**kwargs`` parameters a dict.

        Raises
        ------
        TypeError
            As Python does, when the arguments do not fit the signature.
        """
        n_positional = len(self._positional)
        if len(args) > n_positional:
            if not self._var_positional:
                return self._slow(args, kwargs)
            values, rest = list(args[:n_positional]), tuple(args[n_positional:])
        else:
            values, rest = list(args), ()
        given = {}
        extra = {}
        for name, value in kwargs.items():
            index = self._positional_index.get(name)
            if index is not None:
                if index < len(args):
                    return self._slow(args, kwargs)
                given[name] = value
            elif name in self._keyword_only_set:
                given[name] = value
            elif self._var_keyword:
                extra[name] = value
            else:
                return self._slow(args, kwargs)
        if not self._take(self._positional[len(values) :], given, values):
            return self._slow(args, kwargs)
        if self._var_positional:
            values.append(rest)
        if not self._take(self._keyword_only, given, values):
            return self._slow(args, kwargs)
        if self._var_keyword:
            values.append(extra)
        return values

    def _take(self, names, given, values):
        """Append the given or default value of each of `names`; False if one has neither."""
        for name in names:
            if name in given:
                values.append(given[name])
            elif name in self._defaults:
                values.append(self._defaults[name])
            else:
                return False
        return True

    def _slow(self, args, kwargs):
        bound = self.signature.bind(*args, **kwargs)  # raises Python's own TypeError
        bound.apply_defaults()
        return [bound.arguments[name] for name in self.names]

    def key_values(self, values):
        """The parts of `values` that go into the cache key: ignored names left out."""
        if self._ignored_keywords:
            values = list(values)
            values[self._var_keyword_index] = {
                name: value for name, value in values[-1].items() if name not in self._ignored_keywords
            }
        if len(self._kept) == len(values):
            return tuple(values)
        return tuple(values[index] for index in self._kept)

    def joblib_arguments(self, values):
        """``(key, value)`` pairs of `values` as joblib's metadata keys them, ignored names left out.

        The parameters that have defaults come first, then the others, in
        signature order; extra positional arguments are ``'*'`` (a list),
        extra keywords ``'**'`` (a dict).

        Parameters
        ----------
        values : list
            From :meth:`values`.

        Returns
        -------
        list of tuple
        """
        pairs = []
        for key, index in self._joblib_order:
            value = values[index]
            if key == "*":
                value = list(value)
            elif key == "**" and self._ignored_keywords:
                value = {name: v for name, v in value.items() if name not in self._ignored_keywords}
            pairs.append((key, value))
        return pairs

    def key_names(self):
        """The parameter names matching :meth:`key_values`."""
        return tuple(self.names[index] for index in self._kept)


def display_name(func):
    """Return ``(path, name)`` as joblib's ``[Memory]`` lines show a function.

    `path` is the dotted module path with the enclosing classes and
    functions of its qualified name (``'pkg.mod.Class.method'``, functions of
    the script run as ``__main__`` get ``'__main__-'`` and their file's path
    with ``-`` for separators, as joblib writes it); `name` is ``__name__``
    (``'unknown'`` for callables without one).  This is what is printed;
    entries are filed under :func:`function_name`.

    Parameters
    ----------
    func : callable

    Returns
    -------
    tuple of str
    """
    module = getattr(func, "__module__", None) or ""
    if module == "__main__":
        try:
            filename = os.path.abspath(inspect.getsourcefile(func))
        except TypeError:
            filename = None
        if filename is not None:
            filename = "-".join(filename.split(os.sep))
            module += "-" + (filename[:-3] if filename.endswith(".py") else filename)
    name = getattr(func, "__name__", None) or "unknown"
    parts = [part for part in module.split(".") if part]
    qualname = getattr(func, "__qualname__", None)
    if qualname is not None and qualname != name:
        parts.extend(qualname.split(".")[:-1])  # enclosing classes and functions
    return ".".join(parts + [name]), name


def format_arg(value):
    """One argument as joblib's ``[Memory]`` lines show it: pretty-printed, cut after 700 characters if long.

    Parameters
    ----------
    value : object

    Returns
    -------
    str
    """
    return _cut(pformat(value, indent=2, limit=_LONG))


def format_signature(name, args, kwargs):
    """The call ``name(args..., key=value...)`` as passed, as joblib's ``format_signature`` shows it.

    Positional arguments follow one another on a line; one after an
    argument longer than 80 characters starts a new line.

    Parameters
    ----------
    name : str
        The function's ``__name__``, from :func:`display_name`.
    args : tuple
    kwargs : dict

    Returns
    -------
    str
    """
    shown = []
    previous_length = 0
    for value in args:
        text = format_arg(value)
        if previous_length > 80:
            text = "\n" + text
        previous_length = len(text)
        shown.append(text)
    shown.extend(f"{key}={format_arg(value)}" for key, value in kwargs.items())
    return f"{name}({', '.join(shown)})"


def format_call(func, args, kwargs):
    """joblib's ``[Memory] Calling pkg.mod.f...`` block for a call, its arguments as passed.

    Parameters
    ----------
    func : callable
    args : tuple
    kwargs : dict

    Returns
    -------
    str
    """
    path, name = display_name(func)
    return f"{'_' * 80}\n[Memory] Calling {path}...\n{format_signature(name, args, kwargs)}"


def format_duration(name, seconds, context=""):
    """joblib's closing line: ``____ f - 0.1s, 0.0min``, 80 characters wide.

    Parameters
    ----------
    name : str
        The function's ``__name__``, from :func:`display_name`.
    seconds : float
    context : str, optional
        Put before the time, e.g. ``'cache loaded '``.

    Returns
    -------
    str
    """
    message = f"{name} {context}- {format_time(seconds)}"
    return "_" * max(0, 80 - len(message)) + message


def format_loading(name, timestamp, metadata=None, entry=None):
    """joblib's ``[Memory]0.0s, 0.0min    : Loading f...`` line, printed when a cached result is loaded.

    Parameters
    ----------
    name : str
        The function's ``__name__``.
    timestamp : float or None
        The time (s since the epoch) the line counts from: when the
        ``Memory`` or the cached function was made.
    metadata : dict, optional
        The entry's metadata; its ``'input_args'``, when there, are shown.
    entry : str, optional
        Where the entry is (at verbose 10 and more): the line ends with
        ``from <entry>`` instead of ``...``.

    Returns
    -------
    str
    """
    elapsed = "" if timestamp is None else f"{format_time(time.time() - timestamp): <16}"
    if metadata is not None and "input_args" in metadata:
        name += "(" + ", ".join(f"{key}={value}" for key, value in metadata["input_args"].items()) + ")"
    return f"[Memory]{elapsed}: Loading {name}" + ("..." if entry is None else f" from {entry}")


def input_reprs(binder, values):
    """The ``'input_args'`` of an entry's metadata, keyed as joblib's are.

    joblib's keys, in its order: the parameters that have defaults, then
    the others, ``'*'`` for extra positional arguments (a list) and
    ``'**'`` for extra keywords (a dict); the ignored names are left out.
    Each value is ``repr``, cut as :func:`format_arg` cuts.

    Parameters
    ----------
    binder : CallBinder
    values : list
        From :meth:`CallBinder.values`.

    Returns
    -------
    dict of str
    """
    return {key: _cut(repr(value)) for key, value in binder.joblib_arguments(values)}


# joblib's bound on an argument's text: a longer one is cut after _CUT characters.
_LONG = 1500
_CUT = 700


def _cut(text):
    return text[:_CUT] + "..." if len(text) > _LONG else text
