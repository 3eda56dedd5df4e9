"""Secrets in the sources and in what the platform shows: URL passwords masked, no code
evaluated from text, YAML loaded safely, no ``.env`` committed. (A real sweep with every
production credential in its environment: tests/services/test_secrets.py.)"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from support import REPO_ROOT

from dmlsweep.secrets import redact

SOURCE_DIRS = ("platform", "trainables", "sweeps", "benchmarks")
UNSAFE_YAML = {
    "load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all",
    "Loader", "FullLoader", "UnsafeLoader",
}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg2://u:secretpw@db:5432/optuna", "postgresql+psycopg2://u:***@db:5432/optuna"),
        ("http://admin:pa:ss-w0rd@mlflow:5000", "http://admin:***@mlflow:5000"),
        (
            "first mysql://a:one@h/x, then redis://b:two@h:6379/0 .",
            "first mysql://a:***@h/x, then redis://b:***@h:6379/0 .",
        ),
        ("sqlite:////runs/optuna.db", "sqlite:////runs/optuna.db"),  # nothing to hide
        ("http://mlflow:5000/#/experiments/1", "http://mlflow:5000/#/experiments/1"),
        ("s3://bucket/ray/sweep", "s3://bucket/ray/sweep"),
    ],
)  # fmt: skip
def test_mask_hides_url_passwords_only(text: str, masked: str) -> None:
    assert redact(text) == masked


def _python_sources() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in sorted((REPO_ROOT / d).rglob("*.py"))]
    assert len(files) > 50 and any(p.name == "plan.py" for p in files)
    return files


def _evaluating_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """``eval(...)``, ``exec(...)``, ``compile(...)``, ``__import__(...)`` (bare or through
    ``builtins``); methods such as ``model.eval()`` or ``re.compile()`` are not these."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = func.attr if func.value.id == "builtins" else None
        if name in ("eval", "exec", "compile", "__import__"):
            found.append((node.lineno, name))
    return found


def _unsafe_yaml(tree: ast.AST) -> list[tuple[int, str]]:
    """Uses of PyYAML's loaders that can build arbitrary Python objects."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "yaml" and node.attr in UNSAFE_YAML:
                found.append((node.lineno, f"yaml.{node.attr}"))
        if isinstance(node, ast.ImportFrom) and node.module == "yaml":
            found += [(node.lineno, a.name) for a in node.names if a.name in UNSAFE_YAML]
    return found


def test_the_checks_see_what_they_look_for() -> None:
    bad = ast.parse(
        "import builtins, yaml\nfrom yaml import load\neval('1')\nbuiltins.exec('x = 1')\n"
        "yaml.load(s, Loader=yaml.FullLoader)\nmodel.eval()\nre.compile('a')\n"
        "yaml.safe_load(s)\n"
    )
    assert _evaluating_calls(bad) == [(3, "eval"), (4, "exec")]
    assert sorted(_unsafe_yaml(bad)) == [(2, "load"), (5, "yaml.FullLoader"), (5, "yaml.load")]


def test_no_eval_or_exec_and_yaml_only_loaded_safely_in_the_sources() -> None:
    found, safe_loads = [], 0
    for path in _python_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO_ROOT)
        found += [f"{where}:{line} {what}" for line, what in _evaluating_calls(tree)]
        found += [f"{where}:{line} {what}" for line, what in _unsafe_yaml(tree)]
        safe_loads += sum(
            isinstance(n, ast.Attribute) and n.attr == "safe_load" for n in ast.walk(tree)
        )
    assert found == []
    assert safe_loads >= 2  # the space files and --set values are loaded, safely


def test_no_env_file_is_committed() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "pyproject.toml" in tracked
    env_files = [p for p in tracked if Path(p).name == ".env" or Path(p).name.startswith(".env.")]
    assert env_files == [".env.example"]
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", ".env"])
    assert ignored.returncode == 0, ".env must be in .gitignore"


def test_env_example_holds_only_placeholders() -> None:
    """Every password, secret and token in the committed example is a ``change-me`` value."""
    secret_words = ("PASSWORD", "SECRET", "TOKEN")
    checked = 0
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if line.startswith("#") or not sep or not any(w in key for w in secret_words):
            continue
        assert value.startswith("change-me"), f"{key} has a real-looking value"
        checked += 1
    assert checked >= 5
