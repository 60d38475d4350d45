"""Templates in the sandbox: what they may compute, and the texts they may not make."""

from __future__ import annotations

import jinja2
import pytest

from mailopsd.config.templates import make_environment

# Thirty million characters: over the limit, and still harmless where there is none.
BIG = 30_000_000
LIMIT = "over the limit of 2,097,152 characters"


class TestLimits:
    """A template cannot make a text of more than 2 Mi characters, however it tries."""

    @pytest.mark.parametrize(
        "source",
        [
            f"{{{{ 'x' * {BIG} }}}}",
            f"{{{{ ['x'] * {BIG} }}}}",
            f"{{{{ 'x'|center({BIG}) }}}}",
            f"{{{{ 'x'.ljust({BIG}) }}}}",
            f"{{{{ '%{BIG}s' % 'x' }}}}",
            f"{{{{ '%{BIG}s'|format('x') }}}}",
            f"{{{{ '{{:>{BIG}}}'.format('x') }}}}",
            "{{ ('x' * 1000000)|replace('x', 'y' * 30) }}",
            "{{ ('x' * 1000000).replace('x', 'y' * 30) }}",
            "{{ ('x\n' * 100000)|indent(300) }}",
            "{% set ns = namespace(s='x') %}{% for i in range(25) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(s='x') %}{% for i in range(25) %}"
            "{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}{{ ns.s|length }}",
            "{% for i in range(100000) %}{{ 'x' * 300 }}{% endfor %}",
        ],
    )
    def test_refused_before_it_is_made(self, source: str) -> None:
        """Repetition, padding, replacing, doubling and long output all stop at the limit."""
        with pytest.raises(jinja2.TemplateError, match=LIMIT):
            make_environment().from_string(source).render()

    def test_lists_cannot_be_extended_in_place(self) -> None:
        """A list extended with itself would double each time: templates cannot modify lists."""
        source = "{% set l = [1] %}{% for i in range(25) %}{{ l.extend(l) }}{% endfor %}"
        with pytest.raises(jinja2.TemplateError, match="unsafe"):
            make_environment().from_string(source).render()

    def test_ordinary_templates_still_render(self) -> None:
        """Formatting, padding, joining and replacing of ordinary sizes work as before."""
        source = (
            "Hi {{ name|title }}, {{ '{:,}'.format(5000000) }} {{ '%5.1f'|format(3.14159) }} "
            "[{{ 'x'.center(5) }}] {{ ['a', 'b']|join(', ') }} {{ name.replace('a', 'A') }} "
            "{{ 'ab' * 3 }}{{ [1] + [2] }}"
        )
        assert make_environment().from_string(source).render(name="ada") == (
            "Hi Ada, 5,000,000   3.1 [  x  ] a, b AdA ababab[1, 2]"
        )
