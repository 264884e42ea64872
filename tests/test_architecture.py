"""The layering the design promises, checked on the source: dependencies point one way, one
vocabulary, no private imports across packages, no signal handlers installed by libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from traces import vocab

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "sandbox", "traces", "reports")


def _imports(package: str) -> list[tuple[Path, str]]:
    """(file, imported module) for every absolute import in a package's source."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((path, node.module))
    return found


# What each layer may import of the others (and of the Docker SDK).
ALLOWED = {
    "harness": {"harness", "sandbox", "traces", "reports"},
    "reports": {"reports", "traces"},
    "traces": {"traces"},
    "sandbox": {"sandbox", "traces.vocab", "docker"},
}


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    bad = []
    for path, module in _imports(package):
        top = module.split(".")[0]
        if top not in (*PACKAGES, "docker"):
            continue
        allowed = ALLOWED[package]
        if top not in allowed and module not in allowed:
            bad.append(f"{path.relative_to(ROOT)} imports {module}")
        # Across packages only the facade (or the vocabulary leaf) is used.
        if top != package and any(part.startswith("_") for part in module.split(".")[1:]):
            bad.append(f"{path.relative_to(ROOT)} imports private {module}")
    assert not bad, "\n".join(bad)


def _vocabulary() -> set[str]:
    words: set[str] = set()
    for cls in (vocab.Span, vocab.Attr, vocab.Label):
        words |= {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}
    # Words that are also ordinary values elsewhere (phase names are TOML table names too).
    return {w for w in words if "." in w}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_span_name_or_attribute_key_is_spelled_outside_the_vocabulary(package: str) -> None:
    words = _vocabulary()
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path == ROOT / "traces" / "vocab.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and (node.value in words)
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not bad, "spell these with traces.vocab:\n" + "\n".join(bad)


def test_vocabulary_is_a_leaf_that_loads_no_store() -> None:
    code = (
        "import sys, traces.vocab, sandbox; "
        "print(sorted(m for m in ('duckdb', 'pandas', 'harness') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


LIBRARY_USE = """
import signal, sys
import harness, traces
from sandbox import Sandbox
rec = traces.Recorder(sys.argv[1])
with Sandbox(sys.argv[2]) as sb:
    sb.run("true")
print([signal.getsignal(s) is signal.SIG_DFL for s in (signal.SIGTERM, signal.SIGHUP)])
rec.shutdown()
"""


def test_libraries_install_no_signal_handlers(base_image: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY_USE, str(tmp_path / "t.duckdb"), base_image],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, True]"


def test_public_api_names_resolve() -> None:
    import harness
    import reports
    import sandbox
    import traces

    for module in (harness, sandbox, traces, reports):
        missing = [n for n in module.__all__ if getattr(module, n, None) is None]
        assert not missing, f"{module.__name__}: {missing}"
