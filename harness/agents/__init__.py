"""Agents: the ``Agent`` protocol and the session it acts through, the built-ins (``oracle``,
``nop``, ``scripted``, ``openai``) and a registry that also finds plug-ins (entry points in
``harness.agents``, or ``module:Class``)."""

from ._agent import Agent, AgentContext, AgentOptions, AgentSession, TimeUp, upload_dir
from ._registry import (
    BUILTIN,
    AgentError,
    OptionInfo,
    agent_class,
    builtin_options,
    load_agent,
    options_model,
    validate_options,
)

__all__ = [
    "BUILTIN",
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentOptions",
    "AgentSession",
    "OptionInfo",
    "TimeUp",
    "agent_class",
    "builtin_options",
    "load_agent",
    "options_model",
    "upload_dir",
    "validate_options",
]
