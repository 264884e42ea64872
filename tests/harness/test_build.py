"""Task images: built from environment/ with --image-map, cached by content hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest

from harness import BuildError, load_task, map_dockerfile, parse_image_map, task_image
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
    again = task_image(task, BASE_MAP)
    assert again.cached and again.tag == first.tag and again.image_id == first.image_id
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


def test_unpullable_base_without_map_is_a_build_error(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-workdir", tmp_path)
    (path / "environment" / "Dockerfile").write_text("FROM no-such-base:never\nRUN true\n")
    task, _ = load_task(path)
    assert task is not None
    with pytest.raises(BuildError, match="image build failed") as info:
        task_image(task)
    assert "no-such-base" in str(info.value) + info.value.log


def test_failing_build_step_keeps_the_log(base_image: str, tmp_path: Path) -> None:
    path = _copy("hello-workdir", tmp_path)
    (path / "environment" / "Dockerfile").write_text(
        "FROM ubuntu:24.04\nRUN echo about-to-fail && exit 7\n"
    )
    task, _ = load_task(path)
    assert task is not None
    with pytest.raises(BuildError) as info:
        task_image(task, BASE_MAP)
    assert "about-to-fail" in info.value.log
