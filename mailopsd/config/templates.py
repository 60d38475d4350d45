"""Message templates: one sandboxed Jinja2 environment, and what a template needs.

Templates are rendered in a sandbox with undefined variables as errors, so a lead
never receives "Hi ," and a template cannot reach into Python objects.

Autoescaping is off on purpose: subjects and bodies are plain text (a subject becomes a
header, a body the text part). The HTML part is made from the rendered body by escaping
all of it, so a lead's value such as ``<script>`` is text there, escaped exactly once.
"""

from __future__ import annotations

import functools

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TemplateError", "make_environment", "template_variables"]


class TemplateError(ValueError):
    """A template does not parse; the message names the line inside the template."""


def make_environment() -> SandboxedEnvironment:
    """Return the environment every template is parsed and rendered with."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


_ENVIRONMENT = make_environment()


@functools.lru_cache(maxsize=4096)
def template_variables(source: str) -> frozenset[str]:
    """Return the variables a template reads from its context.

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
