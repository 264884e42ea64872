"""Finding agents by name: built-ins, plug-ins (entry points in ``harness.agents``) and
``module:Class``; building them from validated options."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from ._agent import Agent, AgentOptions

ENTRY_POINT_GROUP = "harness.agents"

# Built-ins by import path, so naming one never imports another (openai is heavy).
BUILTIN: dict[str, str] = {
    "oracle": "harness.agents._builtin:OracleAgent",
    "nop": "harness.agents._builtin:NopAgent",
    "scripted": "harness.agents._builtin:ScriptedAgent",
    "openai": "harness.agents._openai:OpenAIAgent",
}


class AgentError(ValueError):
    """An agent that cannot be found, loaded or given these options; the message says why."""


@dataclass(frozen=True)
class OptionInfo:
    """One option an agent declares, as the command line offers it."""

    name: str  # the field name; the flag is --name-with-dashes
    help: str
    is_flag: bool
    agents: tuple[str, ...]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def agent_class(spec: str) -> Any:
    """The class (or factory) an agent name or ``module:Class`` stands for."""
    if spec in BUILTIN:
        return _import(BUILTIN[spec])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            return ep.load()
    if ":" not in spec:
        names = ", ".join(BUILTIN)
        raise AgentError(
            f"unknown agent {spec!r}: use one of {names}, an installed plug-in, or module:Class"
        )
    try:
        return _import(spec)
    except (ImportError, AttributeError) as exc:
        raise AgentError(f"cannot load agent {spec!r}: {exc}") from None


def options_model(cls: Any) -> type[AgentOptions] | None:
    model = getattr(cls, "Options", None)
    return model if isinstance(model, type) and issubclass(model, AgentOptions) else None


def validate_options(spec: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options as the agent will get them (validated, normalised, only those given),
    ready to store with a run; raises AgentError naming the option and the fix."""
    options = dict(options or {})
    model = options_model(agent_class(spec))
    if model is None:
        return options
    unknown = sorted(set(options) - set(model.model_fields))
    if unknown:
        flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
        known = ", ".join("--" + k.replace("_", "-") for k in model.model_fields) or "none"
        raise AgentError(f"agent {spec} has no option {flags} (its options: {known})")
    try:
        return model.model_validate(options).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise AgentError(_explain(spec, exc)) from None


def load_agent(spec: str, options: dict[str, Any] | None = None) -> Agent:
    """An agent by name (oracle, nop, scripted, openai, an entry point in
    ``harness.agents``) or ``module:Class``, built with ``options``."""
    cls = agent_class(spec)
    model = options_model(cls)
    try:
        if model is None:
            agent: Agent = cls(**(options or {}))
        else:
            agent = cls(model.model_validate(options or {}))
    except ValidationError as exc:
        raise AgentError(_explain(spec, exc)) from None
    except (TypeError, ValueError) as exc:
        raise AgentError(str(exc)) from None
    return agent


def builtin_options() -> Iterator[OptionInfo]:
    """Every option the built-in agents declare, merged by name, for the command line."""
    merged: dict[str, OptionInfo] = {}
    for name, path in BUILTIN.items():
        model = options_model(_import(path))
        if model is None:
            continue
        for field, info in model.model_fields.items():
            prev = merged.get(field)
            merged[field] = OptionInfo(
                field,
                prev.help if prev else (info.description or ""),
                info.annotation is bool,
                (*prev.agents, name) if prev else (name,),
            )
    yield from merged.values()


def _explain(spec: str, exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        field = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"--{field.replace('_', '-')}: {msg}" if field else msg)
    return f"agent {spec}: " + "; ".join(parts)
