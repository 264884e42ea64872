"""Agents declare their own options; the registry validates them before any trial runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import AgentError, load_agent
from harness.agents import builtin_options, validate_options
from tests.conftest import harness_cli


def test_options_are_validated_by_the_agents_own_model(tmp_path: Path) -> None:
    assert validate_options("openai", {"max_steps": "7", "temperature": "0.5"}) == {
        "max_steps": 7,
        "temperature": 0.5,
    }
    with pytest.raises(AgentError, match=r"--max-steps: .*integer"):
        validate_options("openai", {"max_steps": "many"})
    with pytest.raises(AgentError, match=r"agent openai has no option --script \(its options:"):
        validate_options("openai", {"script": "x.yaml"})
    with pytest.raises(AgentError, match=r"agent nop has no option --model \(its options: none"):
        validate_options("nop", {"model": "m"})
    with pytest.raises(AgentError, match="api must be 'responses' or 'chat'"):
        load_agent("openai", {"api": "soap"})


def test_openai_shell_tool_options_fit_the_api() -> None:
    assert load_agent("openai").shell_tool == "native"  # type: ignore[attr-defined]
    assert load_agent("openai", {"api": "chat"}).shell_tool == "function"  # type: ignore[attr-defined]
    with pytest.raises(AgentError, match="shell tool must be 'native' or 'function'"):
        validate_options("openai", {"shell_tool": "hosted"})
    with pytest.raises(AgentError, match=r"--shell-tool native, --store needs --api responses"):
        validate_options("openai", {"api": "chat", "shell_tool": "native", "store": True})
    with pytest.raises(AgentError, match="reasoning summary must be auto, concise or detailed"):
        validate_options("openai", {"reasoning_summary": "long"})


def test_a_script_path_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.yaml").write_text("commands: [ls]\n")
    monkeypatch.chdir(tmp_path)
    stored = validate_options("scripted", {"script": "s.yaml"})
    assert stored == {"script": str(tmp_path / "s.yaml")}
    assert load_agent("scripted", stored).common == ["ls"]  # type: ignore[attr-defined]


def test_builtin_options_become_run_flags() -> None:
    flags = {o.flag: o.agents for o in builtin_options()}
    assert flags["--model"] == ("openai",) and flags["--script"] == ("scripted",)
    res = harness_cli("run", "--help")
    assert res.returncode == 0
    for flag in ("--model", "--base-url", "--script", "--agent-option"):
        assert flag in res.stdout


def test_run_refuses_an_option_of_another_agent_before_starting(tmp_path: Path) -> None:
    res = harness_cli(
        "run", "tasks", "--agent", "openai", "--script", "x.yaml", "--db", str(tmp_path / "t")
    )
    assert res.returncode == 2
    assert "agent openai has no option --script" in res.stderr
    assert not (tmp_path / "t").exists()  # nothing was recorded


def test_agent_option_pairs_reach_a_plugin(tmp_path: Path) -> None:
    res = harness_cli(
        "run",
        "tasks",
        "--agent",
        "tests.harness.plugin_agent:TouchDone",
        "-O",
        "path",  # not KEY=VALUE
        "--db",
        str(tmp_path / "t"),
    )
    assert res.returncode == 2 and "expected KEY=VALUE" in res.stderr
    # A plug-in without an Options model gets its options as keyword arguments.
    agent = load_agent("tests.harness.plugin_agent:TouchDone", {"path": "/tmp/x"})
    assert json.dumps(agent.path) == '"/tmp/x"'  # type: ignore[attr-defined]
