"""Editing a YAML document's text in place: replacements at the nodes' positions."""

from __future__ import annotations

from mailopsd.secrets.yamltext import YamlDocument


class TestEdited:
    """``YamlDocument.edited`` puts each replacement where it belongs and keeps the rest."""

    def test_many_replacements_in_any_order(self) -> None:
        """Replacements given out of order each land on their own span."""
        text = "".join(f"k{i}: v{i}\n" for i in range(1000))
        doc = YamlDocument(text, "x.yaml")
        edits = []
        for i in range(1000):
            start = text.index(f"v{i}\n")
            edits.append((start, start + len(f"v{i}"), f"sealed{i}"))
        edited = doc.edited(list(reversed(edits)))
        assert edited == "".join(f"k{i}: sealed{i}\n" for i in range(1000))

    def test_an_insertion_before_a_replacement(self) -> None:
        """Text inserted where a replaced span starts comes before the replacement."""
        doc = YamlDocument("a: 1\nb: 2", "x.yaml")
        start = doc.text.index("2")
        assert doc.edited([(start, start + 1, "3"), (start, start, "x")]) == "a: 1\nb: x3\n"
