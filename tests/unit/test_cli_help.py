"""Every ``tenantgate`` subcommand prints its help (argparse expands ``%`` in help
texts: a default holding one broke ``tenantgate seed --help`` once)."""

from __future__ import annotations

import pytest

from proxy.cli import main

SUBCOMMANDS = ("serve", "demo", "hash-token", "check-config", "seed", "bench")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: tenantgate {command}" in capsys.readouterr().out
