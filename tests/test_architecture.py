"""The import rules of the layout (README, "Layout"), checked from the code's own import statements.

- ``blender_addon/`` (Blender's process) never imports torch, ``stylepass.core`` or ``stylepass.training``;
- ``blender_addon/contract/`` imports only the standard library and itself;
- ``core/`` and ``training/`` never import bpy, and of the add-on only its ``contract/``;
- ``core/`` outside ``core/cli/`` never imports ``stylepass.training``.

Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOPS = {"core": "stylepass.core", "training": "stylepass.training", "blender_addon": "stylepass.blender_addon"}
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "addon_utils", "bmesh", "gpu", "aud", "freestyle", "bl_ui"}


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([TOPS[parts[0]], *parts[1:]])


def imported_modules(path: Path, root: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    relative = path.relative_to(root)
    name = module_name(relative)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return found


def violations(root: Path) -> list[str]:
    """Every broken import rule in the tree at ``root``, as ``file: imported module (rule)`` lines."""
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for top in TOPS:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root)
            own = module_name(relative)
            in_contract = relative.parts[:2] == ("blender_addon", "contract")
            in_cli = relative.parts[:2] == ("core", "cli")
            for module in sorted(imported_modules(path, root)):
                first = module.split(".")[0]
                rule = None
                if top == "blender_addon":
                    if first == "torch" or module.startswith(("stylepass.core", "stylepass.training")):
                        rule = "the add-on never imports torch, stylepass.core or stylepass.training"
                    elif in_contract and first not in stdlib and not module.startswith(
                            ("stylepass.blender_addon.contract", "__future__")):
                        rule = "contract/ imports only the standard library and itself"
                else:
                    if first in BLENDER_MODULES:
                        rule = f"{top}/ never imports Blender's modules"
                    elif module.startswith("stylepass.blender_addon") and not (
                            module.startswith("stylepass.blender_addon.contract")
                            or module == "stylepass.blender_addon"):
                        rule = f"{top}/ imports only the add-on's contract/"
                    elif top == "core" and not in_cli and module.startswith("stylepass.training"):
                        rule = "core/ outside core/cli/ never imports stylepass.training"
                if rule:
                    problems.append(f"{relative} ({own}): imports {module} ({rule})")
    return problems


def test_the_repository_keeps_its_import_rules() -> None:
    assert violations(REPO) == []


def test_contract_modules_exist_apart_from_bpy_modules() -> None:
    contract = sorted(p.stem for p in (REPO / "blender_addon" / "contract").glob("*.py") if p.stem != "__init__")
    assert {"export_format", "headless_protocol", "worker_protocol", "atomic_files"} <= set(contract)
    loose_bpy_free = [p.name for p in (REPO / "blender_addon").glob("*.py")
                      if "bpy" not in p.read_text() and p.name != "__init__.py"]
    assert loose_bpy_free == [], "Blender-free add-on modules belong in blender_addon/contract/"


@pytest.mark.parametrize(("file", "source", "broken"), [
    ("blender_addon/contract/bad.py", "import numpy\n", "contract/ imports only the standard library"),
    ("blender_addon/scene/bad.py", "from ...core.io import gbuffer\n", "never imports torch, stylepass.core"),
    ("blender_addon/ui/bad.py", "def f():\n    import torch\n", "never imports torch"),
    ("core/io/bad.py", "from stylepass.training.loop import trainer\n", "outside core/cli/"),
    ("core/models/bad.py", "from ..inference import predict\nimport bpy\n", "never imports Blender's modules"),
    ("training/data/bad.py", "from stylepass.blender_addon.scene import passes\n",
     "imports only the add-on's contract/"),
])
def test_each_rule_catches_a_planted_import(tmp_path: Path, file: str, source: str, broken: str) -> None:
    for top in TOPS:
        (tmp_path / top).mkdir()
    planted = tmp_path / file
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(source)
    found = violations(tmp_path)
    assert any(broken in line and file in line for line in found), found


def test_core_cli_may_import_training(tmp_path: Path) -> None:
    planted = tmp_path / "core" / "cli" / "train_command.py"
    planted.parent.mkdir(parents=True)
    (tmp_path / "training").mkdir()
    (tmp_path / "blender_addon").mkdir()
    planted.write_text("from stylepass.training.loop import trainer\n"
                       "from stylepass.blender_addon.contract import exit_codes\n")
    assert violations(tmp_path) == []
