"""The strict stand-in for the OpenAI API keeps each of the API's rules: a request that breaks
one is refused with the API's status and error shape, through the real ``openai`` client, and
the same request done right is accepted. If a rule here is dropped, the agent's tests could
pass while a real endpoint rejects its requests."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.harness.openai_api import (
    Model,
    Servers,
    function_call,
    message,
    reasoning,
    response,
    shell_call,
)

TOOL = {"type": "function", "name": "shell", "parameters": {"type": "object"}}
USER = {"role": "user", "content": "hi"}


def client(serve: Servers, model: Model) -> Any:
    return openai.OpenAI(api_key="sk-test", base_url=serve(model), max_retries=0)


def output_of(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "{}"}


def shell_output(call_id: str, outcome: Any = None) -> dict[str, Any]:
    outcome = outcome or {"type": "exit", "exit_code": 0}
    return {
        "type": "shell_call_output",
        "call_id": call_id,
        "output": [{"stdout": "ok\n", "stderr": "", "outcome": outcome}],
        "max_output_length": 1000,
    }


def refused(exc: pytest.ExceptionInfo[openai.APIStatusError], status: int, text: str) -> None:
    """The refusal has the API's status and error shape, and says what is wrong."""
    e = exc.value
    assert e.status_code == status
    assert isinstance(e.body, dict) and set(e.body) == {"message", "type", "param", "code"}
    assert e.type == "invalid_request_error" and text in e.message, e.message


def first_turn(c: Any, include: bool, store: bool = False) -> Any:
    """A first turn whose output is a reasoning item and a function call."""
    return c.responses.create(
        model="m",
        input=[USER],
        tools=[TOOL],
        store=store,
        include=["reasoning.encrypted_content"] if include else [],
    )


def reasoning_turn() -> tuple[int, dict[str, Any]]:
    return 200, response(1, reasoning(1), function_call(1, {"commands": ["ls"]}))


def test_reasoning_without_its_encrypted_content_is_refused_under_store_false(
    serve: Servers,
) -> None:
    model = Model([reasoning_turn(), reasoning_turn(), (200, response(2, message(2)))])
    c = client(serve, model)
    first = first_turn(c, include=False)
    items = [i.model_dump(exclude_none=True) for i in first.output]
    assert "encrypted_content" not in items[0]  # not asked for, not given
    with pytest.raises(openai.NotFoundError) as exc:
        c.responses.create(
            model="m", input=[USER, *items, output_of("call_1")], tools=[TOOL], store=False
        )
    refused(exc, 404, "Items are not persisted when `store` is set to false")
    assert exc.value.param == "input"

    # Asked for and passed back, the same conversation goes on.
    again = first_turn(c, include=True)
    items = [i.model_dump(exclude_none=True) for i in again.output]
    assert items[0]["encrypted_content"] == model.encrypted["rs_1"]
    done = c.responses.create(
        model="m", input=[USER, *items, output_of("call_1")], tools=[TOOL], store=False
    )
    assert done.output_text == "Done."


def test_forged_encrypted_reasoning_and_a_reasoning_item_without_its_call(
    serve: Servers,
) -> None:
    model = Model([reasoning_turn()])
    c = client(serve, model)
    items = [i.model_dump(exclude_none=True) for i in first_turn(c, include=True).output]
    forged = {**items[0], "encrypted_content": "gAAAAforged"}
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(
            model="m",
            input=[USER, forged, items[1], output_of("call_1")],
            tools=[TOOL],
            store=False,
        )
    refused(exc, 400, "could not be verified")
    assert exc.value.code == "invalid_encrypted_content"
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="m", input=[USER, items[0]], tools=[TOOL], store=False)
    refused(exc, 400, "without its required following item")


def test_an_output_must_answer_a_call_the_model_issued(serve: Servers) -> None:
    model = Model([reasoning_turn()])
    c = client(serve, model)
    made_up = function_call(9, {"commands": ["id"]})
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="m", input=[USER, made_up, output_of("call_9")], tools=[TOOL])
    refused(exc, 400, "No tool call found for function call output with call_id call_9")

    items = [i.model_dump(exclude_none=True) for i in first_turn(c, include=True).output]
    # The call was a function call: a shell call output cannot answer it.
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="m", input=[USER, *items, shell_output("call_1")], tools=[TOOL])
    refused(exc, 400, "No tool call found for shell call output with call_id call_1")
    # And it must be answered before the conversation goes on.
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="m", input=[USER, *items, USER], tools=[TOOL])
    refused(exc, 400, "No tool output found for function call call_1")


def test_unknown_item_tool_and_include_values_are_refused(serve: Servers) -> None:
    c = client(serve, Model([]))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": [USER, {"type": "bash_call", "id": "x"}]}, "input[1].type"),
        ({"input": [USER], "tools": [{"type": "terminal"}]}, "tools[0].type"),
        ({"input": [USER], "include": ["reasoning.everything"]}, "include[0]"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            c.responses.create(model="m", **kwargs)
        refused(exc, 400, "Invalid value")
        assert (exc.value.param, exc.value.code) == (param, "invalid_value")


def test_an_endpoint_without_the_native_shell_tool_refuses_it(serve: Servers) -> None:
    c = client(serve, Model([], native_shell=False))
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="m", input=[USER], tools=[{"type": "shell"}])
    refused(exc, 400, 'Invalid value: "shell"')
    assert exc.value.param == "tools[0].type"


def test_previous_response_id_must_name_a_stored_response(serve: Servers) -> None:
    model = Model([reasoning_turn(), reasoning_turn(), (200, response(2, message(2)))])
    c = client(serve, model)
    with pytest.raises(openai.NotFoundError) as exc:
        c.responses.create(model="m", input=[USER], previous_response_id="resp_404")
    refused(exc, 404, "Previous response with id 'resp_404' not found")
    assert exc.value.code == "previous_response_not_found"
    first_turn(c, include=False, store=False)  # issued, but not kept
    with pytest.raises(openai.NotFoundError) as exc:
        c.responses.create(
            model="m", input=[output_of("call_1")], previous_response_id="resp_1", tools=[TOOL]
        )
    refused(exc, 404, "Previous response with id 'resp_1' not found")

    first_turn(c, include=False, store=True)  # kept: the chain goes on without resending
    done = c.responses.create(
        model="m", input=[output_of("call_1")], previous_response_id="resp_1", tools=[TOOL]
    )
    assert done.id == "resp_2" and done.previous_response_id == "resp_1"


def test_a_shell_call_output_has_the_hosted_shape(serve: Servers) -> None:
    model = Model([(200, response(1, shell_call(1, ["ls"])))])
    c = client(serve, model)
    first = c.responses.create(model="m", input=[USER], tools=[{"type": "shell"}], store=True)
    assert first.output[0].type == "shell_call"
    for bad, param in [
        ({"type": "exited", "exit_code": 0}, "input[0].output[0].outcome.type"),
        ({"type": "exit", "exit_code": "0"}, "input[0].output[0].outcome.exit_code"),
    ]:
        with pytest.raises(openai.BadRequestError) as exc:
            c.responses.create(
                model="m",
                input=[shell_output("call_1", bad)],
                previous_response_id="resp_1",
                tools=[{"type": "shell"}],
            )
        assert exc.value.param == param
