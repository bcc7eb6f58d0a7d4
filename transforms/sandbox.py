"""The Jinja environment recipe templates run in: sandboxed, immutable, and bounded.

Templates are untrusted (recipes, DAG parameters), so beyond Jinja's sandbox:

* **Nothing is evaluated when a template is compiled.** Jinja folds constant expressions at
  compile time (``{{ 10**(10**10) }}`` would spin the launcher); here every operator and filter
  is intercepted and the finalizer needs the render context, which makes folding impossible.
* **Each example has a budget** (``RenderBudget``): a CPU time limit from the moment its render
  starts, checked as it renders — on every loop iteration, call, operator, attribute and printed
  value, and at once after work on a large value — a size limit on every value it builds (string
  and list multiplication and concatenation, integer products and powers, padding and repeating
  filters and methods, formatting, JSON indentation) checked *before* the value is built, a limit
  on all it builds in one render together, and one on everything it prints. Over budget, the
  render stops with ``BudgetExceeded``.
* **Only data is printed**: a function, a macro or a template object printed would put a memory
  address (``<function ... at 0x7f...>``) into the training text; it is refused.
* **Builtin containers are immutable** (Jinja's ``ImmutableSandboxedEnvironment``, as
  ``transformers`` uses for chat templates): no ``list.append`` growing a value in a loop.
"""

from __future__ import annotations

import itertools
import re
import time
import types
from typing import Any, Callable

from jinja2 import Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.visitor import NodeTransformer
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas.recipe import LimitsSpec
from schemas.records import EXAMPLE_TOO_LARGE, TEMPLATE_ERROR

# Integers a power may build: far past anything printable (str() stops at 4,300 digits).
MAX_INT_BITS = 65_536
# The CPU clock is read every this many steps (a step is a loop turn, a call, an operator...).
STEPS_PER_CLOCK_READ = 64
# Work on a value counts one step per this many characters or items of it: an operation on a
# large value reads the clock at once.
BYTES_PER_STEP = 1_024
# What one render may build in all, as a multiple of limits.max_example_chars: a template works
# on copies of the row's values (trim, replace, split), but never on many times the example.
BUILT_PER_RENDER = 4
# Jinja's default globals that are gadgets, not features, for a data template: their
# ``__init__.__globals__`` lead to modules (the classic way out of a template).
REMOVED_GLOBALS = ("lipsum", "cycler", "joiner")


class BudgetExceeded(Exception):
    """A render went over its budget; ``code`` is the row's rejection code."""

    def __init__(self, message: str, code: str = TEMPLATE_ERROR):
        super().__init__(message)
        self.code = code


class RenderBudget:
    """CPU time and sizes for one example at a time.

    ``start`` begins an example: its CPU deadline is set there, so every render of it (a chat
    template renders an example several times to find the assistant spans) draws on one clock.
    ``again`` begins another render of the same example: the sizes start over (what the last
    render built is garbage now), the clock does not. Within a render, every value built counts
    towards ``BUILT_PER_RENDER`` × ``max_example_chars`` in all, so many values each under the
    limit cannot add up to the worker's memory.
    """

    def __init__(self, limits: LimitsSpec = LimitsSpec()):
        self.max_chars = limits.max_example_chars
        self.max_built = BUILT_PER_RENDER * limits.max_example_chars
        self.max_seconds = limits.max_render_seconds
        self._rendering = False  # compiling, or between renders: nothing counts
        self._deadline = 0.0
        self._steps = 0
        self._printed = 0
        self._built = 0

    def start(self) -> None:
        self._deadline = time.thread_time() + self.max_seconds
        self.again()

    def again(self) -> None:
        self._rendering = True
        self._steps = 0
        self._printed = 0
        self._built = 0

    def stop(self) -> None:
        self._rendering = False

    def step(self, cost: int = 1) -> None:
        """One unit of work; ``cost`` more for work that grows with a value's size, so that the
        clock is read after every slow operation and every ``STEPS_PER_CLOCK_READ`` cheap ones."""
        self._steps += cost
        if self._steps < STEPS_PER_CLOCK_READ or not self._rendering:
            return
        self._steps = 0
        if time.thread_time() > self._deadline:
            self._rendering = False  # one raise per render, even if the template is mid-loop
            raise BudgetExceeded(f"rendering took more than {self.max_seconds:g} s of CPU time "
                                 "(limits.max_render_seconds)")

    def allow(self, size: int, what: str) -> None:
        """Refuse to build a value of ``size`` characters (or items)."""
        if size > self.max_chars:
            raise BudgetExceeded(f"{what} would build a value of {size:,} characters or items, over the "
                                 f"{self.max_chars:,} of limits.max_example_chars")

    def built(self, size: int, what: str) -> None:
        """A value of ``size`` was built: it counts towards the render's total."""
        self._built += size
        if self._built > self.max_built and self._rendering:
            raise BudgetExceeded(f"the template built more than {self.max_built:,} characters in all by {what} "
                                 f"({BUILT_PER_RENDER} x limits.max_example_chars)")
        if size >= BYTES_PER_STEP:
            self.step(size // BYTES_PER_STEP)

    def check(self, value: Any, what: str) -> Any:
        """``value``, built by ``what``: refused over the size limit, else counted."""
        if isinstance(value, str):  # the common case, kept short: it runs for most operations
            size = len(value)
            if size > self.max_chars:
                self.allow(size, what)
            self.built(size, what)
        elif isinstance(value, (bytes, bytearray, list, tuple, dict, set, frozenset)):
            self.allow(len(value), what)
            # The strings in a new container are often new too (split, a list comprehension).
            self.built(len(value) + sum(len(item) for item in value if isinstance(item, (str, bytes))), what)
        return value

    def printed(self, size: int) -> None:
        """Everything a render prints, in macros and ``{% set %}`` blocks too, counts."""
        self._printed += size
        if self._printed > self.max_chars:
            raise BudgetExceeded(f"the example renders to more than {self.max_chars:,} characters "
                                 "(limits.max_example_chars)", EXAMPLE_TOO_LARGE)
        if size >= BYTES_PER_STEP:
            self.step(size // BYTES_PER_STEP)


_PERCENT_WIDTHS = re.compile(r"%[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?")
_BRACE_SPECS = re.compile(r"\{[^{}]*:([^{}]*)\}|\{[^{}]*\{")


def _check_format(fmt: str, args: Any, budget: RenderBudget, what: str) -> None:
    """Widths and precisions in a ``%`` or ``str.format`` string are sizes: ``'%0999999999d'``."""
    numbers = [int(n) for match in _PERCENT_WIDTHS.finditer(fmt) for n in match.groups() if n and n != "*"]
    numbers += [int(n) for spec in _BRACE_SPECS.finditer(fmt) for n in re.findall(r"\d+", spec[1] or "")]
    values = args if isinstance(args, (tuple, list)) else (args.values() if isinstance(args, dict) else (args,))
    if "*" in fmt or _BRACE_SPECS.search(fmt):  # widths taken from the arguments
        numbers += [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    for number in numbers:
        budget.allow(number, what)


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else len(str(value))


def _check_replace(text: Any, old: Any, new: Any, count: Any, budget: RenderBudget, what: str) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    budget.allow(len(text) + occurrences * (len(new) - len(old)), what)


def _check_padding(text: Any, width: Any, budget: RenderBudget, what: str) -> None:
    if isinstance(width, int):
        budget.allow(max(width, _length(text)), what)


def _materialise(items: Any, budget: RenderBudget, what: str) -> list:
    """An iterable as a list, counted as it is drawn (a lazy ``map`` over a huge range)."""
    out = []
    for item in items:
        budget.step()
        out.append(item)
        if len(out) > budget.max_chars:
            budget.allow(len(out), what)
    return out


def _size(value: Any) -> int:
    """How much work a value is to go through: its length where it has one."""
    return len(value) if isinstance(value, (str, bytes, bytearray, list, tuple, dict, set, frozenset)) else 1


def _json_indent_size(value: Any, indent: int, budget: RenderBudget) -> int:
    """What ``indent`` adds to the JSON of ``value``: a new line and the item's depth of
    indentation per item of every array and object. Counted before the JSON is built."""
    extra, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        budget.step(1 + len(children) // BYTES_PER_STEP)
        extra += (len(children) + 1) * (1 + depth * indent)
        if extra > budget.max_chars:
            break
        stack.extend((child, depth + 1) for child in children)
    return extra


def _check_joined(items: list, separator: str, budget: RenderBudget, what: str) -> None:
    budget.allow(sum(_length(item) for item in items) + len(separator) * max(0, len(items) - 1), what)


# Filters whose output can be far larger than their input, checked before they run. Each takes
# the filter's arguments after the environment/context one and may return replaced arguments.
def _pre_center(budget, value, width=80, *rest, **kw):
    _check_padding(value, width, budget, "the center filter")


def _pre_indent(budget, value, width=4, *rest, **kw):
    lines = str(value).count("\n") + 1
    per_line = width if isinstance(width, int) else _length(width)
    budget.allow(_length(value) + lines * per_line, "the indent filter")


def _pre_format(budget, value, *args, **kwargs):
    _check_format(str(value), kwargs or args, budget, "the format filter")


def _pre_replace(budget, value, old, new, count=None, *rest, **kw):
    _check_replace(value, old, new, count, budget, "the replace filter")


def _pre_batch(budget, value, linecount, *rest, **kw):
    budget.allow(linecount if isinstance(linecount, int) else 0, "the batch filter")


def _pre_slice(budget, value, slices, *rest, **kw):
    budget.allow(slices if isinstance(slices, int) else 0, "the slice filter")


def _pre_wordwrap(budget, value, width=79, *rest, **kw):
    wrapstring = kw.get("wrapstring") or (rest[1] if len(rest) > 1 and rest[1] else "\n")
    budget.allow(_length(value) * (1 + len(str(wrapstring))), "the wordwrap filter")


def _pre_tojson(budget, value, indent=None, *rest, **kw):
    indent = kw.get("indent", indent)
    width = indent if isinstance(indent, int) and not isinstance(indent, bool) else (
        len(indent) if isinstance(indent, str) else 0)
    if width > 0:
        budget.allow(_json_indent_size(value, width, budget), "the tojson filter")


_FILTER_CHECKS: dict[str, Callable] = {
    "center": _pre_center, "indent": _pre_indent, "format": _pre_format, "replace": _pre_replace,
    "batch": _pre_batch, "slice": _pre_slice, "wordwrap": _pre_wordwrap, "tojson": _pre_tojson,
}


def _prefix_for(func: Callable, context) -> tuple:
    """What Jinja passes a filter before its value, by the filter's ``pass_*`` decoration."""
    kind = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    if kind == "context":
        return (context,)
    if kind == "eval_context":
        return (context.eval_ctx,)
    if kind == "environment":
        return (context.environment,)
    return ()


def bounded_filter(name: str, func: Callable) -> Callable:
    """``func`` behind the budget. It needs the render context, so Jinja never runs it at
    compile time; iterables that ``join``, ``sum`` and ``list`` consume are drawn step by step."""

    @pass_context
    def bounded(context, value, *args, **kwargs):
        budget: RenderBudget = context.environment.budget
        budget.step(1 + _size(value) // BYTES_PER_STEP)
        what = f"the {name} filter"
        if name in ("join", "sum", "list", "unique", "sort") and not isinstance(value, (str, bytes, dict)):
            value = _materialise(value, budget, what)
        check = _FILTER_CHECKS.get(name)
        if check is not None:
            check(budget, value, *args, **kwargs)
        if name == "join" and not kwargs.get("attribute") and (len(args) < 2 or args[1] is None):
            _check_joined(value, str(args[0]) if args else str(kwargs.get("d", "")), budget, what)
        if name == "sum":
            attribute = args[0] if args else kwargs.get("attribute")
            start = args[1] if len(args) > 1 else kwargs.get("start", 0)
            if attribute is None and isinstance(start, (list, tuple)) and all(isinstance(i, type(start)) for i in value):
                # sum() over lists copies the total once per item; chaining them is linear.
                budget.allow(len(start) + sum(len(item) for item in value), what)
                return type(start)(itertools.chain(start, *value))
        return budget.check(func(*_prefix_for(func, context), value, *args, **kwargs), what)

    bounded.__name__ = getattr(func, "__name__", name)
    return bounded


def _check_method(method: Any, args: tuple, kwargs: dict, budget: RenderBudget) -> None:
    """str and bytes methods that pad, repeat or join: refused before they build the value."""
    method = getattr(method, "__wrapped__", method)  # str.format comes wrapped by the sandbox
    owner = getattr(method, "__self__", None)
    if not isinstance(method, types.BuiltinMethodType):
        return
    name = method.__name__
    if isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            budget.allow(length, "int.to_bytes()")
        return
    if not isinstance(owner, (str, bytes)):
        return
    what = f"{type(owner).__name__}.{name}()"
    if name in ("ljust", "rjust", "center", "zfill") and args:
        _check_padding(owner, args[0], budget, what)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            budget.allow(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * size, what)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1), budget, what)
    elif name in ("format", "format_map") and isinstance(owner, str):
        _check_format(owner, kwargs or (args[0] if name == "format_map" and args else args), budget, what)


def _prints_an_address(value: Any) -> bool:
    if isinstance(value, (str, int, float, Undefined)):
        return False
    kind = type(value)
    return (callable(value) or kind.__module__.startswith("jinja2.")
            or (kind.__str__ is object.__str__ and kind.__repr__ is object.__repr__))


def _big_ints(left: Any, right: Any) -> bool:
    return (isinstance(left, int) and isinstance(right, int)
            and not isinstance(left, bool) and not isinstance(right, bool))


class _BoundLoopsAndJoins(NodeTransformer):
    """Route every ``for`` loop's iterable and every ``~`` concatenation through the budget."""

    def __init__(self, environment):
        self._environment = environment

    def _call(self, name: str, args: list, lineno: int):
        call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)
        return call.set_environment(self._environment)

    def visit_For(self, node: nodes.For):
        node = self.generic_visit(node)
        node.iter = self._call("bounded_iter", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat):
        node = self.generic_visit(node)
        return self._call("bounded_concat", list(node.nodes), node.lineno)


class _Steps:
    """An iterable whose every item is a budget step; sized when the source is (``loop.length``)."""

    def __init__(self, items: Any, budget: RenderBudget):
        self._items = items
        self._budget = budget

    def __iter__(self):
        step = self._budget.step
        for item in self._items:
            step()
            yield item

    def __len__(self):
        return len(self._items)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with a ``budget`` (a ``RenderBudget``) that every render draws on."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self, *, budget: RenderBudget | None = None, finalize: Callable[[Any], Any] | None = None, **options):
        # No constant folding: a constant expression is evaluated when a row renders, on budget.
        super().__init__(optimized=False, **options)
        self.budget = budget or RenderBudget()
        for name in REMOVED_GLOBALS:
            self.globals.pop(name, None)
        self.filters = {name: bounded_filter(name, func) for name, func in self.filters.items()}
        to_text = finalize or (lambda value: value)

        @pass_context
        def printed(context, value):
            if _prints_an_address(value):
                raise SecurityError(f"a {type(value).__name__} is printed where text is expected (its text "
                                    "would be a memory address, different on every run)")
            text = str(to_text(value))
            context.environment.budget.printed(len(text))
            return text

        # A finalizer that needs the context also keeps Jinja from printing constants at compile time.
        self.finalize = printed

    def from_string(self, source, globals=None, template_class=None):
        if isinstance(source, str):
            source = _BoundLoopsAndJoins(self).visit(self.parse(source))
        return super().from_string(source, globals, template_class)

    def bounded_iter(self, items: Any) -> _Steps:
        return _Steps(items, self.budget)

    def bounded_concat(self, *parts: Any) -> str:
        texts = [part if isinstance(part, str) else str(part) for part in parts]
        self.budget.allow(sum(map(len, texts)), "the ~ operator")
        return "".join(texts)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget
        budget.step()
        what = f"the {operator} operator"
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int):
                    budget.allow(len(sequence) * times, what)
            # The product of two integers has as many bits as both: refused before it is computed.
            if _big_ints(left, right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise BudgetExceeded(f"{what} would build an integer of more than {MAX_INT_BITS:,} bits")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and max(abs(left).bit_length() - 1, 1) * right > MAX_INT_BITS:
                raise BudgetExceeded(f"{what} would build an integer of more than {MAX_INT_BITS:,} bits")
        elif operator == "+" and isinstance(left, (str, bytes, list, tuple)) and isinstance(right, type(left)):
            budget.allow(len(left) + len(right), what)
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right, budget, what)
        return budget.check(super().call_binop(context, operator, left, right), what)

    def call_unop(self, context, operator: str, arg: Any) -> Any:
        self.budget.step()
        return super().call_unop(context, operator, arg)

    def call(self, context, obj, /, *args, **kwargs):  # noqa: D102 - see the class docstring
        budget = self.budget
        budget.step(1 + _size(getattr(obj, "__self__", None)) // BYTES_PER_STEP)
        _check_method(obj, args, kwargs, budget)
        if isinstance(getattr(obj, "__self__", None), str) and getattr(obj, "__name__", None) == "join" and args:
            # str.join draws its iterable: count it as it goes, then refuse a join that is too long.
            items = _materialise(args[0], budget, "str.join()")
            _check_joined(items, obj.__self__, budget, "str.join()")
            args = (items, *args[1:])
        return budget.check(super().call(context, obj, *args, **kwargs), f"calling {getattr(obj, '__name__', 'a function')}")

    def getattr(self, obj, attribute):
        self.budget.step()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self.budget.step()
        value = super().getitem(obj, argument)
        # A slice is a new value (text[::-1] in a loop builds a new copy each turn).
        return self.budget.check(value, "a slice") if isinstance(argument, slice) else value
