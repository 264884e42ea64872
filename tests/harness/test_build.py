"""Task images: built from environment/ with --image-map, cached by content hash."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import docker
import pytest

from harness import BuildError, load_task, map_dockerfile, parse_image_map, task_image
from harness._build import base_images
from tests.conftest import harbor_fixtures

FIXTURES = harbor_fixtures()
BASE_MAP = {"ubuntu:24.04": "harness-base:bookworm"}


def test_image_map_parsing_and_rewrite() -> None:
    assert parse_image_map(["a:1=b:2", " c = d "]) == {"a:1": "b:2", "c": "d"}
    with pytest.raises(ValueError, match="FROM=TO"):
        parse_image_map(["nope"])
    text = "FROM ubuntu:24.04 AS base\nRUN true\nfrom --platform=linux/amd64 ubuntu:24.04\n"
    assert map_dockerfile(text, BASE_MAP) == (
        "FROM harness-base:bookworm AS base\nRUN true\n"
        "from --platform=linux/amd64 harness-base:bookworm\n"
    )


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst


def test_build_once_then_cached_and_rebuilt_on_change(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-workdir", tmp_path)
    task, _ = load_task(path)
    assert task is not None
    first = task_image(task, BASE_MAP, force=True)  # a clean start even if a run left it
    assert not first.cached and "Successfully built" in first.log
    assert first.build_s > 0
    again = task_image(task, BASE_MAP)
    assert again.cached and again.tag == first.tag and again.image_id == first.image_id
    assert again.build_s == 0 and again.log == ""
    with (path / "environment" / "Dockerfile").open("a") as f:
        f.write("RUN echo changed > /changed\n")
    task2, _ = load_task(path)
    assert task2 is not None
    changed = task_image(task2, BASE_MAP)
    assert not changed.cached and changed.tag != first.tag
    assert task_image(task2, BASE_MAP).cached
    assert not task_image(task2, BASE_MAP, force=True).cached
    api = docker.from_env().api
    for tag in {first.tag, changed.tag}:
        api.remove_image(tag, force=True)


def test_base_images_of_a_dockerfile() -> None:
    text = (
        "ARG BASE=debian\nFROM --platform=linux/amd64 golang:1.22 AS build\nRUN true\n"
        "FROM build AS test\nFROM $BASE\nFROM scratch\nFROM ubuntu:24.04\nFROM golang:1.22\n"
    )
    assert base_images(text) == ["golang:1.22", "ubuntu:24.04"]


def test_unpullable_base_without_map_names_it_and_the_fixes(
    base_image: str, tmp_path: Path
) -> None:
    path = _copy("hello-workdir", tmp_path)
    (path / "environment" / "Dockerfile").write_text(
        f"FROM {base_image} AS ok\nFROM no-such-base:never\nRUN true\n"
    )
    task, _ = load_task(path)
    assert task is not None
    with pytest.raises(BuildError) as info:
        task_image(task)
    message = str(info.value)
    assert "FROM no-such-base:never is not on the engine" in message
    assert f"--image-map no-such-base:never={base_image}" in message
    assert "docker load" in message
    assert "registry-1.docker.io" not in message  # the engine's own words stay in the log
    assert "no-such-base" in info.value.log


def test_missing_docker_image_names_the_fixes(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-world", tmp_path)
    shutil.rmtree(path / "environment")
    toml = (path / "task.toml").read_text()
    toml = toml.replace("[environment]\n", '[environment]\ndocker_image = "nowhere/never:1"\n')
    (path / "task.toml").write_text(toml)
    task, problems = load_task(path)
    assert task is not None, problems
    with pytest.raises(BuildError) as info:
        task_image(task)
    assert f"--image-map nowhere/never:1={base_image}" in str(info.value)
    assert "docker load" in str(info.value)


def test_failing_build_step_keeps_the_log(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-workdir", tmp_path)
    (path / "environment" / "Dockerfile").write_text(
        "FROM ubuntu:24.04\nRUN printf '\\033[1;31mabout-to-fail\\033[0m\\n' && exit 7\n"
    )
    task, _ = load_task(path)
    assert task is not None
    with pytest.raises(BuildError) as info:
        task_image(task, BASE_MAP)
    assert "about-to-fail" in info.value.log and "\x1b" not in info.value.log
    assert info.value.build_s > 0


def test_build_log_is_plain_text(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-workdir", tmp_path)
    token = uuid.uuid4().hex  # a step Docker has not cached, so its output is in the log
    colored = f"\\033[32mgreen-{token}\\033[0m \\033]0;title\\007done\\n"
    (path / "environment" / "Dockerfile").write_text(f"FROM ubuntu:24.04\nRUN printf '{colored}'\n")
    task, _ = load_task(path)
    assert task is not None
    lines: list[str] = []
    image = task_image(task, BASE_MAP, progress=lines.append)
    try:
        assert f"green-{token} done" in image.log and "\x1b" not in image.log
        assert "\x07" not in image.log
        assert not any("\x1b" in line for line in lines)
    finally:
        docker.from_env().api.remove_image(image.tag, force=True)
