"""Message templates: one sandboxed Jinja2 environment, and what a template needs.

Templates are rendered in a sandbox with undefined variables as errors, so a lead
never receives "Hi ," and a template cannot reach into Python objects.

Autoescaping is off on purpose: subjects and bodies are plain text (a subject becomes a
header, a body the text part). The HTML part is made from the rendered body by escaping
all of it, so a lead's value such as ``<script>`` is text there, escaped exactly once.

The sandbox also bounds what a template can allocate: whoever may change the config
could otherwise write ``{{ 'x' * 3000000000 }}`` and kill the daemon when it renders.
Jinja2's sandbox caps ``range`` only, so this one refuses, before doing it, any
operation that would make a text (or a list) longer than ``MAX_TEXT_CHARS``: repetition
and concatenation (``*``, ``+``, ``~``), ``%`` and ``str.format`` with wide fields, the
padding, replacing and joining string methods and filters; it caps every output and
the rendered text, and templates may not modify lists or dicts (a list extended with
itself doubles). A limit reached is a :class:`TemplateLimitError`: at ``validate`` a
config error located at the template, at send time a failure of that lead only.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import string
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_TEXT_CHARS",
    "TemplateError",
    "TemplateLimitError",
    "check_render",
    "limit_message",
    "make_environment",
    "template_variables",
]

# 2 Mi characters: twice the largest body file, with room for the leads' values.
MAX_TEXT_CHARS = 2 * 1024 * 1024
# batch and slice make one list per step: as many as range() may count.
_MAX_PIECES = 100_000


class TemplateError(ValueError):
    """A template does not parse; the message names the line inside the template."""


class TemplateLimitError(SecurityError):
    """A template would make a text larger than ``MAX_TEXT_CHARS``."""


def limit_message(size: int | None = None) -> str:
    """Say that a template would make a text over the limit (of ``size``, when known)."""
    made = f" of {size:,} characters," if size is not None else ""
    return (
        f"the template would make a text{made} over the limit of {MAX_TEXT_CHARS:,} "
        "characters: make the template or what it repeats shorter"
    )


def _too_long(size: int | None = None) -> TemplateLimitError:
    return TemplateLimitError(limit_message(size))


def _text_size(value: object) -> int:
    """Roughly how long ``str(value)`` is, counting no further than past the limit.

    Containers are walked without converting them, so a list holding itself twice at
    each of 60 levels costs no more than the limit to measure.
    """
    stack = [value]
    size = 0
    while stack and size <= MAX_TEXT_CHARS:
        item = stack.pop()
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, Mapping):
            size += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            size += 2 + 2 * len(item)
            stack.extend(item)
        else:
            size += 1
    return size


def _check_size(size: int) -> None:
    if size > MAX_TEXT_CHARS:
        raise _too_long(size)


def _check_value(value: object) -> object:
    _check_size(_text_size(value))
    return value


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


# Binary operators ---------------------------------------------------------------------


def _repeat_size(left: object, right: object) -> int:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int):
            return len(sequence) * max(count, 0)
    return 0


def _power_size(base: object, exponent: object) -> int:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        return math.ceil(exponent * math.log10(abs(base)))
    return 0


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _percent_size(template: object, values: object) -> int:
    """The most ``template % values`` can make: the text, the values and the widths."""
    if not isinstance(template, str):
        return 0
    items = values if isinstance(values, tuple) else (values,)
    star = sum(abs(item) for item in items if isinstance(item, int))
    widths = 0
    for match in _PERCENT_FIELD.finditer(template):
        widths += sum(star if group == "*" else int(group) for group in match.groups() if group)
    return len(template) + _text_size(values) + widths


def _binop_size(operator: str, left: object, right: object) -> int:
    if operator == "*":
        return _repeat_size(left, right)
    if operator == "**":
        return _power_size(left, right)
    if operator == "%":
        return _percent_size(left, right)
    if operator == "+" and isinstance(left, str | bytes | list | tuple):
        return len(left) + (len(right) if isinstance(right, str | bytes | list | tuple) else 0)
    return 0


# Methods and filters ------------------------------------------------------------------


def _format_size(template: str) -> int:
    """The widths ``template.format(...)`` pads to, summed; a width given by a field is refused."""
    widths = len(template)
    for _, _, spec, _ in string.Formatter().parse(template):
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimitError("a format width given by another field is not allowed")
        widths += sum(int(digits) for digits in re.findall(r"\d+", spec))
    return widths


def _str_method_size(text: str | bytes, name: str, arguments: Mapping[str, Any]) -> int:
    """What a padding, replacing or translating method of a string can make at most."""
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(text), _int(arguments.get("width")))
    if name == "expandtabs":
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        return len(text) + tabs * max(_int(arguments.get("tabsize"), 8), 0)
    if name == "replace":
        count = _int(arguments.get("count"), -1)
        times = len(text) + 1 if count < 0 else min(count, len(text) + 1)
        return len(text) + times * _text_size(arguments.get("new"))
    if name == "translate":
        table = arguments.get("table")
        longest = (
            max((_text_size(v) for v in table.values()), default=1)
            if isinstance(table, Mapping)
            else 1
        )
        return len(text) * max(longest, 1)
    return 0


def _method_arguments(
    method: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Mapping[str, Any]:
    try:
        return inspect.signature(method).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):  # the call itself will say what is wrong
        return {}


def _indent_size(arguments: Mapping[str, Any]) -> int:
    text = str(arguments.get("s", ""))
    width = arguments.get("width", 4)
    step = len(width) if isinstance(width, str) else _int(width, 4)
    return len(text) + (text.count("\n") + 1) * max(step, 0)


def _wordwrap_size(arguments: Mapping[str, Any]) -> int:
    text = str(arguments.get("s", ""))
    width = max(_int(arguments.get("width"), 79), 1)
    wrap = arguments.get("wrapstring")
    return len(text) + (len(text) // width + 1) * (_text_size(wrap) if wrap else 1)


def _pieces(arguments: Mapping[str, Any], name: str) -> int:
    if _int(arguments.get(name)) > _MAX_PIECES:
        raise TemplateLimitError(f"{name} over {_MAX_PIECES:,} is not allowed")
    return 0


_FILTER_SIZES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "center": lambda a: max(_text_size(a.get("value")), _int(a.get("width"), 80)),
    "indent": _indent_size,
    "replace": lambda a: _str_method_size(str(a.get("s", "")), "replace", a),
    "wordwrap": _wordwrap_size,
    "format": lambda a: _percent_size(a.get("value"), a.get("args") or a.get("kwargs")),
    "tojson": lambda a: _text_size(a.get("value")) * (2 + max(_int(a.get("indent")), 0)),
    "batch": lambda a: _pieces(a, "linecount"),
    "slice": lambda a: _pieces(a, "slices"),
}


def _limited_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter: its arguments and result are measured, and some are estimated first."""
    estimate = _FILTER_SIZES.get(name)

    @functools.wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _check_value(value)
        if estimate is not None:
            _check_size(estimate(_method_arguments(function, args, kwargs)))
        return _check_value(function(*args, **kwargs))

    return limited


# The environment ----------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Compiles ``~`` into a call that measures its parts before joining them."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja2's name
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.join_values((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox that refuses to make texts over ``MAX_TEXT_CHARS``, and immutable containers."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Measure what an operator would make before it makes it."""
        _check_size(_binop_size(operator, left, right))
        return _check_value(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call a method or function, refusing a padding or replacing call that is too large."""
        owner = getattr(obj, "__self__", None)
        if isinstance(obj, types.BuiltinMethodType) and isinstance(owner, str | bytes):
            if obj.__name__ == "join" and args:
                items = list(args[0])
                _check_size(sum(_text_size(item) for item in items) + len(owner) * len(items))
                args = (items, *args[1:])
            else:
                arguments = _method_arguments(obj, args, kwargs)
                _check_size(_str_method_size(owner, obj.__name__, arguments))
        return _check_value(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Refuse ``str.format`` on a text whose fields pad too wide."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_size(_format_size(value.__self__))
        return wrapped

    def concat(self, parts: Iterable[str]) -> str:
        """Join the rendered parts, stopping as soon as they pass the limit."""
        kept: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > MAX_TEXT_CHARS:
                raise _too_long()
            kept.append(part)
        return "".join(kept)

    def join_values(self, values: Iterable[object]) -> str:
        """``a ~ b``: measure each value before it is turned into text."""
        return self.concat(str(_check_value(value)) for value in values)


def _finalize(value: object) -> object:
    """Measure each value a template outputs before it is turned into text."""
    return _check_value(value)


def make_environment() -> jinja2.Environment:
    """Return the environment every template is parsed and rendered with."""
    environment = _LimitedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    environment.filters = {
        name: _limited_filter(name, function) for name, function in environment.filters.items()
    }
    # lipsum(n) writes n paragraphs: nothing a message needs.
    environment.globals.pop("lipsum", None)
    return environment


_ENVIRONMENT = make_environment()


@functools.lru_cache(maxsize=4096)
@functools.lru_cache(maxsize=4096)
def template_variables(source: str) -> frozenset[str]:
    """Return the variables a template reads from its context (parsed once per text).

    Args:
        source: The template text.

    Returns:
        The names it uses that are neither assigned in it nor Jinja2 globals.

    Raises:
        TemplateError: The template has a syntax error.
    """
    try:
        tree = _ENVIRONMENT.parse(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(
            f"template syntax error on line {err.lineno} of the template: {err.message}"
        ) from err
    return frozenset(meta.find_undeclared_variables(tree) - set(_ENVIRONMENT.globals))


@functools.lru_cache(maxsize=4096)
def check_render(source: str, variables: frozenset[str]) -> None:
    """Render a template once with every variable empty, to find a limit it always passes.

    Other failures depend on the leads' values and are each lead's own, at send time.

    Args:
        source: The template text (it parses).
        variables: The variables it reads.

    Raises:
        TemplateError: The template makes a text over the limit even so, or cannot be
            compiled (an unknown filter, say).
    """
    try:
        template = _ENVIRONMENT.from_string(source)
        template.render(dict.fromkeys(variables, ""))
    except TemplateLimitError as err:
        raise TemplateError(str(err)) from err
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(
            f"template error on line {err.lineno} of the template: {err.message}"
        ) from err
    except Exception:  # what fails for empty values may not fail for a lead's
        return
