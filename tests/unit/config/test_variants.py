"""A step's variants: what is accepted, and each mistake at its own line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd.config.loader import LoadCache, load_config
from mailopsd.daemon.watcher import WatchedFiles, watched_files
from tests.configs import BASE, PLAINTEXT_OK, Writer, errors_of, loads

STEP1 = """      - subject: "Quick question, {{ first_name }}"
        body: "Hi {{ first_name }}"
"""


def _with_step1(write_config: Writer, step1: str) -> Path:
    return write_config(replace=(STEP1, step1))


def test_variants_replace_subject_or_body_and_keep_weights(write_config: Writer) -> None:
    """A variant's own subject or body replaces the step's; the rest is the step's."""
    Path("short.txt").write_text("Short one, {{ first_name }}.\n")
    path = _with_step1(
        write_config,
        STEP1
        + "        variants:\n"
        + '          plain: {weight: 3, subject: "Hello {{ first_name }}"}\n'
        + "          short: {body_file: short.txt}\n",
    )
    loaded = loads(path)
    step = loaded.config.campaigns["acme-q4"].sequence[0]
    assert step.variants is not None
    assert [(name, v.weight) for name, v in step.variants.items()] == [("plain", 3), ("short", 1)]
    assert step.subject_of("plain") == "Hello {{ first_name }}"
    assert step.subject_of("short") == "Quick question, {{ first_name }}"
    assert loaded.body("acme-q4", 0, "short") == "Short one, {{ first_name }}.\n"
    assert loaded.body("acme-q4", 0, "plain") == "Hi {{ first_name }}"


def test_the_daemon_watches_a_variants_template(write_config: Writer) -> None:
    """An edited variant template makes the running daemon reload, as a step's does."""
    Path("short.txt").write_text("Short one.\n")
    path = _with_step1(
        write_config, STEP1 + "        variants:\n          short: {body_file: short.txt}\n"
    )
    loaded = loads(path)
    assert Path("short.txt").resolve() in watched_files(loaded)
    assert Path("short.txt").resolve() in WatchedFiles().of(loaded)


def test_the_daemon_watches_what_an_edited_campaign_names(write_config: Writer) -> None:
    """After a reload, the files of the edited campaign are watched, not those it left."""
    Path("short.txt").write_text("Short one.\n")
    Path("other.txt").write_text("Other one.\n")
    path = _with_step1(
        write_config, STEP1 + "        variants:\n          short: {body_file: short.txt}\n"
    )
    cache, watching = LoadCache(), WatchedFiles()
    assert Path("short.txt").resolve() in watching.of(load_config(path, PLAINTEXT_OK, cache=cache))
    path.write_text(path.read_text().replace("body_file: short.txt", "body_file: other.txt"))
    watched = watching.of(load_config(path, PLAINTEXT_OK, cache=cache))
    assert Path("other.txt").resolve() in watched
    assert Path("short.txt").resolve() not in watched


def test_a_step_without_body_needs_one_in_every_variant(write_config: Writer) -> None:
    """The step's body may be left out when every variant has one, and only then."""
    good = (
        '      - subject: "Quick question"\n'
        "        variants:\n"
        '          a: {body: "Version A"}\n'
        '          b: {body: "Version B"}\n'
    )
    assert loads(_with_step1(write_config, good)).body("acme-q4", 0, "b") == "Version B"
    bad = good.replace('          b: {body: "Version B"}\n', "          b: {weight: 2}\n")
    assert errors_of(_with_step1(write_config, bad)) == [
        "c.yaml:9:14: campaigns.acme-q4.sequence.0.variants.b: a variant sets a subject, "
        "a body or both"
    ]
    bad = good.replace('          b: {body: "Version B"}\n', '          b: {subject: "B"}\n')
    assert errors_of(_with_step1(write_config, bad)) == [
        "c.yaml:9:14: campaigns.acme-q4.sequence.0.variants.b: variant b has no body and "
        "the step has none: give the step a body (or body_file), or the variant one"
    ]


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        (
            "          a: {weight: 0, body: x}\n",
            "c.yaml:9:23: campaigns.acme-q4.sequence.0.variants.a.weight: must be an integer "
            "≥ 1 (got 0)",
        ),
        (
            "          A B: {body: x}\n",
            'c.yaml:9:11: campaigns.acme-q4.sequence.0.variants.A B: invalid id "A B": use 1 to 63 '
            "lowercase letters, digits and dashes, starting with a letter or digit",
        ),
        (
            "          a: {body: x, body_file: x.txt}\n",
            "c.yaml:9:21: campaigns.acme-q4.sequence.0.variants.a.body: give at most one of "
            "body or body_file",
        ),
        (
            "          a: {body: x, colour: red}\n",
            "c.yaml:9:24: campaigns.acme-q4.sequence.0.variants.a.colour: unknown field",
        ),
        (
            "          a: {body_file: missing.txt}\n",
            "c.yaml:9:26: campaigns.acme-q4.sequence.0.variants.a.body_file: template file "
            "missing.txt not found",
        ),
        (
            '          a: {subject: "Hi {{ frist_name }}"}\n',
            "c.yaml:9:24: campaigns.acme-q4.sequence.0.variants.a.subject: step 1 uses "
            "{{ frist_name }} but leads.csv has no frist_name column; did you mean first_name? "
            "(columns: email, first_name, company)",
        ),
    ],
)
def test_a_bad_variant_is_located(write_config: Writer, variants: str, expected: str) -> None:
    """Each mistake in a variant is reported where it is written."""
    errors = errors_of(_with_step1(write_config, STEP1 + "        variants:\n" + variants))
    assert errors == [expected]


def test_step_1_variants_need_a_subject(write_config: Writer) -> None:
    """Without a subject on step 1, every variant must have its own."""
    step1 = (
        '      - body: Hi\n        variants:\n          a: {subject: "A"}\n          b: {body: B}\n'
    )
    assert errors_of(_with_step1(write_config, step1)) == [
        "c.yaml:9:14: campaigns.acme-q4.sequence.0.variants.b: step 1 needs a subject: "
        "variant b has none and the step has none"
    ]


def test_a_mistake_in_a_step_is_its_only_error(write_config: Writer) -> None:
    """The step's own error, not also "sequence: must not be empty" for the list it is in
    (a one-step sequence whose step fails has no valid step left)."""
    one_step = STEP1 + "        variants:\n" + '          a: {subject: "x", weigth: 2}\n'
    text = BASE.replace(STEP1 + '      - delay: 3 days\n        body: "Following up"\n', one_step)
    assert errors_of(write_config(text)) == [
        "c.yaml:9:29: campaigns.acme-q4.sequence.0.variants.a.weigth: unknown field; did you "
        "mean weight?"
    ]
