"""Reconciling leads files through a stage: plans without a ledger, order, plan command."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd import cli
from mailopsd.config.loader import LoadOptions, load_config
from mailopsd.errors import StateError
from mailopsd.reconcile import CampaignRemoved, CredentialRemoved, LeadsChanged
from mailopsd.state.apply import Reconciler
from mailopsd.state.ledger import Ledger
from mailopsd.state.observe import config_revision
from mailopsd.state.statefile import StateFile, save_state
from tests.configs import BASE, Writer

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PLAIN = LoadOptions(allow_plaintext_secrets=True)
LEADS = "email,first_name\nada@example.com,Ada\nbad,Bad\nADA@example.com,Again\nbo@example.com,Bo\n"
OTHER = BASE.replace("acme-q4:", "beta:").replace("leads: leads.csv", "leads: beta.csv")


def test_plan_without_a_ledger_stages_in_a_scratch_ledger(write_config: Writer) -> None:
    """Before any ledger exists, a plan still counts what the leads file adds."""
    path = write_config()
    Path("leads.csv").write_text(LEADS)
    reconciler = Reconciler(Path("state"), None, {}, create_key=False)
    plan = reconciler.plan(load_config(path, PLAIN), StateFile())
    (leads,) = [action for action in plan.actions if isinstance(action, LeadsChanged)]
    assert (
        leads.describe()
        == "~ leads acme-q4: +2 added, ~0 changed, -0 removed, 2 rows skipped (leads.csv)"
    )
    assert [row.email for row in leads.added] == ["ada@example.com", "bo@example.com"]
    assert list(leads.problems) == [
        "leads.csv:3: has no valid email ('bad': an email address must have an @-sign); skipped",
        "leads.csv:4: repeats ADA@example.com (line 2 kept)",
    ]
    assert not Path("state").exists()


def test_leads_apply_before_removed_campaigns(write_config: Writer, tmp_path: Path) -> None:
    """Leads imports keep their place in a plan: after credentials, before removals."""
    Path("beta.csv").write_text(LEADS)
    path = write_config(BASE + OTHER.removeprefix("campaigns:\n"))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ledger = Ledger.open(state_dir)
    reconciler = Reconciler(state_dir, ledger, {})
    plan = reconciler.plan(load_config(path, PLAIN), StateFile())
    state = reconciler.apply(plan, StateFile(), NOW)
    assert ledger.leads.count("beta") == 2
    assert ledger.imports.problems("beta") == [
        "beta.csv:3: has no valid email ('bad': an email address must have an @-sign); skipped",
        "beta.csv:4: repeats ADA@example.com (line 2 kept)",
    ]
    write_config()
    Path("leads.csv").write_text(LEADS)
    plan = reconciler.plan(load_config(path, PLAIN), state)
    assert [type(action) for action in plan.actions] == [
        CredentialRemoved,
        LeadsChanged,
        CampaignRemoved,
    ]
    state = reconciler.apply(plan, state, NOW)
    assert ledger.leads.count("acme-q4") == 2
    assert reconciler.plan(load_config(path, PLAIN), state).is_empty
    ledger.close()


def test_plan_command_stages_in_the_readonly_ledger(
    write_config: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mailopsd plan`` shows a changed leads file without writing to the ledger."""
    path = write_config()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ledger = Ledger.open(state_dir)
    reconciler = Reconciler(state_dir, ledger, {})
    state = reconciler.apply(
        reconciler.plan(load_config(path, PLAIN), StateFile()), StateFile(), NOW
    )
    save_state(state_dir, state)
    ledger.close()
    Path("leads.csv").write_text(LEADS)
    before = (state_dir / "ledger.sqlite3").read_bytes()
    capsys.readouterr()
    code = cli.main(
        ["plan", "--config", str(path), "--state-dir", str(state_dir), "--allow-plaintext-secrets"]
    )
    out = capsys.readouterr().out
    assert code == 2, out
    assert "~ leads acme-q4: +2 added, ~0 changed, -1 removed, 2 rows skipped (leads.csv)" in out
    assert (state_dir / "ledger.sqlite3").read_bytes() == before


def test_leads_swapped_after_validation_are_not_read(
    write_config: Writer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A leads file that leads out of the tree by import time is refused, not imported."""
    path = write_config()
    loaded = load_config(path, PLAIN)
    outside = tmp_path_factory.mktemp("outside") / "leads.csv"
    outside.write_text(LEADS)
    Path("leads.csv").unlink()
    Path("leads.csv").symlink_to(outside)
    reconciler = Reconciler(Path("state"), None, {}, create_key=False)
    with pytest.raises(StateError) as caught:
        reconciler.plan(loaded, StateFile())
    assert str(caught.value) == (
        f"leads file leads.csv is outside the config directory {Path.cwd().resolve()} "
        f"(it leads to {outside}); put the file in that directory or below it and give its "
        "path relative to the config file"
    )


def test_leads_turned_fifo_after_validation_are_not_read(write_config: Writer) -> None:
    """A leads file replaced by a FIFO by import time is refused at once, not waited on."""
    path = write_config()
    loaded = load_config(path, PLAIN)
    Path("leads.csv").unlink()
    os.mkfifo("leads.csv")
    reconciler = Reconciler(Path("state"), None, {}, create_key=False)
    with pytest.raises(StateError, match=r"^leads file leads.csv is a FIFO, not a regular file"):
        reconciler.plan(loaded, StateFile())


def test_the_revision_is_the_commit_of_a_clean_git_work_tree(tmp_path: Path) -> None:
    """A clean work tree gives its commit, a changed one or no repository the content hash,
    as does a config in a folder of a work tree (git is asked from where the files are)."""
    config = tmp_path / "repo" / "config"
    config.mkdir(parents=True)
    files = (config / "c.yaml",)
    files[0].write_text("campaigns: {}\n")
    assert config_revision(files, "ab" * 32) == "sha256:" + "ab" * 8
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=T", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    assert config_revision(files, "ab" * 32) == "git:" + head.stdout.strip()[:12]
    files[0].write_text("campaigns: {x: 1}\n")
    assert config_revision(files, "cd" * 32) == "sha256:" + "cd" * 8
