"""Reading leads files row by row: lines, problems, repeats, digests and progress."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from mailopsd.config.leads import LeadLine, first_non_utf8, iter_leads, read_leads
from mailopsd.progress import Work

CSV = (
    "\ufeffemail , first_name\n"
    "Ada@Example.com,Ada\n"
    '"bob@example.com","Bob\nSmith"\n'  # a line break in a value: lines 3-4
    "\n"
    "not-an-address,Nobody\n"
    "ADA@example.com,Again\n"
    " cy@example.com ,Cy\n"
)
NO_AT = "an email address must have an @-sign"


def _write(tmp_path: Path, text: str = CSV) -> Path:
    path = tmp_path / "leads.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_iter_leads_yields_every_non_blank_row_in_order(tmp_path: Path) -> None:
    """Usable rows keep their first line, address in normal form and digest; repeats come too."""
    lines = list(iter_leads(_write(tmp_path), "leads.csv"))
    assert [(lead.line, lead.email, lead.problem) for lead in lines] == [
        (2, "ada@example.com", None),
        (3, "", "leads.csv:3: has a line break in a value (header injection); skipped"),
        (6, "", f"leads.csv:6: has no valid email ('not-an-address': {NO_AT}); skipped"),
        (7, "ada@example.com", None),
        (8, "cy@example.com", None),
    ]
    first = lines[0]
    assert first.given == "Ada@Example.com"
    assert first.fields == {"email": "ada@example.com", "first_name": "Ada"}
    assert first.text == json.dumps(first.fields, sort_keys=True, ensure_ascii=False)
    assert first.row_hash == hashlib.sha256(first.text.encode()).hexdigest()
    assert lines[4].given == "cy@example.com"


def test_read_leads_keeps_the_first_of_a_repeated_address(tmp_path: Path) -> None:
    """read_leads keeps rows by address and reports skipped rows in line order."""
    read = read_leads(_write(tmp_path), "leads.csv")
    assert list(read.rows) == ["ada@example.com", "cy@example.com"]
    assert read.rows["ada@example.com"].fields["first_name"] == "Ada"
    assert read.problems == [
        "leads.csv:3: has a line break in a value (header injection); skipped",
        f"leads.csv:6: has no valid email ('not-an-address': {NO_AT}); skipped",
        "leads.csv:7: repeats ADA@example.com (line 2 kept)",
    ]


def test_iter_leads_keeps_nothing_between_rows(tmp_path: Path) -> None:
    """The reader is a generator: it reads as it is consumed, and reports progress."""
    path = _write(tmp_path, "email\n" + "".join(f"l{i}@example.net\n" for i in range(2_501)))
    reports: list[Work] = []
    rows = iter_leads(path, "leads.csv", progress=reports.append)
    first = next(rows)
    assert isinstance(first, LeadLine)
    assert reports == [Work("reading leads.csv", 0, path.stat().st_size, "B", note="0 rows")]
    assert sum(1 for _ in rows) == 2_500
    assert [(work.note, work.finished) for work in reports] == [
        ("0 rows", False),
        ("1,000 rows", False),
        ("2,000 rows", False),
        ("2,501 rows", True),
    ]


def test_a_read_stopped_early_ends_its_progress(tmp_path: Path) -> None:
    """A read stopped before the end of the file still sends its last report."""
    path = _write(tmp_path, "email\n" + "".join(f"l{i}@example.net\n" for i in range(10)))
    reports: list[Work] = []
    rows = iter_leads(path, "leads.csv", progress=reports.append)
    next(rows)
    rows.close()
    assert (reports[-1].note, reports[-1].finished) == ("1 row", True)


def test_progress_is_in_bytes_of_the_file(tmp_path: Path) -> None:
    """Progress counts the file's bytes read, up to its size at the end."""
    path = _write(tmp_path, "email\n" + "".join(f"l{i}@example.net\n" for i in range(100_000)))
    reports: list[Work] = []
    read = read_leads(path, "leads.csv", progress=reports.append)
    assert len(read.rows) == 100_000
    done = [work.done for work in reports]
    assert done == sorted(done)
    assert 0 < done[50] < path.stat().st_size
    assert reports[-1].done == reports[-1].total == path.stat().st_size
    assert {(work.what, work.unit) for work in reports} == {("reading leads.csv", "B")}


def test_display_name_defaults_to_the_path(tmp_path: Path) -> None:
    """Without a display name, problems name the file by its path."""
    path = _write(tmp_path, "email\nnope\n")
    (lead,) = iter_leads(path)
    assert lead.problem == f"{path}:2: has no valid email ('nope': {NO_AT}); skipped"


def test_a_row_the_csv_module_refuses_is_skipped(tmp_path: Path) -> None:
    """A value over the csv field size limit skips its row with a problem; reading goes on."""
    huge = "x" * (csv.field_size_limit() + 1)
    path = _write(tmp_path, f"email\nada@example.com\n{huge}@example.com\ncy@example.com\n")
    lines = list(iter_leads(path, "leads.csv"))
    refused = f"field larger than field limit ({csv.field_size_limit()})"
    assert [(lead.line, lead.email, lead.problem) for lead in lines] == [
        (2, "ada@example.com", None),
        (3, "", f"leads.csv:3: cannot be read ({refused}); skipped"),
        (4, "cy@example.com", None),
    ]


def test_first_non_utf8_reads_across_chunks(tmp_path: Path) -> None:
    """A character split by a chunk boundary is UTF-8; a bad or cut one is found by line."""
    path = tmp_path / "leads.csv"
    head = b"email\n" + b"x" * ((1 << 20) - 7)  # "é" straddles the first 1 MiB read
    path.write_bytes(head + "é@example.com\n".encode())
    assert first_non_utf8(path) is None
    path.write_bytes(head + "é@example.com\n".encode() + b"caf\xe9@example.com\n")
    assert first_non_utf8(path) == (3, 0xE9)
    path.write_bytes(head + "é\n".encode() + b"\xc3")  # cut in the middle of a character
    assert first_non_utf8(path) == (3, 0xC3)


# Issue 22, item 4: addresses the old check let through, each sent and counted as a bounce.
MALFORMED = [
    "john@example..com",
    "grp:x@example.com",
    "a(b)@example.com",
    "x" * 300 + "@example.com",
    "x" * 65 + "@example.com",
    "a\x00b@example.com",
    "a\\b@example.com",
    '"a b"@example.com',
    "a@example.com.",
    "a@[127.0.0.1]",
]


def test_malformed_addresses_are_skipped_with_their_line(tmp_path: Path) -> None:
    """Each malformed address of the issue is skipped and reported with its file and line."""
    rows = "".join(f'"{address.replace(chr(34), chr(34) * 2)}",X\n' for address in MALFORMED)
    path = _write(tmp_path, "email,first_name\nok@example.com,Ok\n" + rows)
    read = read_leads(path, "leads.csv")
    assert list(read.rows) == ["ok@example.com"]
    assert len(read.problems) == len(MALFORMED)
    for line, problem in enumerate(read.problems, start=3):
        assert problem.startswith(f"leads.csv:{line}: has no valid email (")
        assert problem.endswith("; skipped")


# Issue 22, item 6: spellings of one mailbox that were keyed, and mailed, apart.
FULL_WIDTH = "".join(chr(ord(letter) + 0xFEE0) for letter in "example")
VARIANTS = [
    ("a@bücher.de", "a@xn--bcher-kva.de"),
    ("b@bü\u00adcher.de", "b@xn--bcher-kva.de"),
    (f"c@{FULL_WIDTH}.com", "c@example.com"),
    ("D@BÜCHER.DE", "d@xn--bcher-kva.de"),
]


def test_spellings_of_one_mailbox_are_one_lead(tmp_path: Path) -> None:
    """An IDN and its A-label form, a soft hyphen or full-width letters make one key."""
    rows = "".join(f"{first},First\n{second},Second\n" for first, second in VARIANTS)
    read = read_leads(_write(tmp_path, "email,first_name\n" + rows), "leads.csv")
    assert list(read.rows) == [wire.lower() for _, wire in VARIANTS]
    assert [row.fields["first_name"] for row in read.rows.values()] == ["First"] * 4
    assert read.problems == [
        f"leads.csv:{2 * n + 3}: repeats {second} (line {2 * n + 2} kept)"
        for n, (_, second) in enumerate(VARIANTS)
    ]
