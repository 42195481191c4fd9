"""A hub run killed before its clean-up (SIGKILL, a reboot) leaves a ledger; the next run removes
exactly what it lists, and refuses while the run that wrote it is alive (deploy/hub.py)."""
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy"))
import hub as deploy_hub  # noqa: E402 - deploy/ is not a package

USER = "s10tleftover"


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy_hub, "LEDGER", tmp_path / "ledger" / "made.json")
    return deploy_hub.LEDGER


def killed_run(ledger, **made):
    """Write LEDGER as a run would have, with this process as its writer, then mark the writer dead."""
    hub = deploy_hub.ClassHub([USER], [], [], log=lambda *_: None)
    for name, value in made.items():
        setattr(hub, name, value)
    hub.record()
    text = ledger.read_text()
    dead = text.replace(f'"pid": {os.getpid()}', '"pid": 1').replace('"boot": "', '"boot": "a boot before ')
    assert dead != text
    ledger.write_text(dead)


def test_a_live_run_is_not_touched(ledger, tmp_path):
    made = tmp_path / "made-by-the-live-run"
    made.mkdir()
    live = deploy_hub.ClassHub([USER], [], [], log=lambda *_: None)
    live.made_paths = [made]
    live.record()
    with pytest.raises(SystemExit, match=f"another run \\(PID {os.getpid()}\\) holds the class"):
        deploy_hub.ClassHub([USER], [], [], log=lambda *_: None).remove_leftovers()
    assert made.exists() and ledger.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (makes a Unix user)")
def test_a_killed_runs_leftovers_are_removed_and_nothing_else(ledger, tmp_path):
    subprocess.run(["useradd", "-m", USER], check=True)
    try:
        listed, unlisted, traversed = tmp_path / "listed", tmp_path / "unlisted", tmp_path / "closed"
        for d in (listed, unlisted, traversed):
            d.mkdir()
        (listed / "deep" / "er").mkdir(parents=True)
        traversed.chmod(0o701)   # the killed run had opened it for the users
        never_made = tmp_path / "listed-before-it-was-made"
        killed_run(ledger, made_users=[USER, "s10tnevermade"], made_paths=[listed, never_made],
                   traversed=[traversed])
        messages = []
        deploy_hub.ClassHub([USER], [], [], log=messages.append).remove_leftovers()
        assert subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0
        assert not pathlib.Path(f"/home/{USER}").exists()
        assert not listed.exists() and unlisted.exists()
        assert traversed.stat().st_mode & 0o777 == 0o700
        assert not ledger.exists()
        assert any("killed before its clean-up" in m for m in messages)
    finally:
        subprocess.run(["userdel", "-r", USER], capture_output=True)
