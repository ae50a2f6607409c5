"""dvc.yaml's code deps cannot drift: every module a stage runs is one of that stage's deps.

Each stage's command names its entry module (``python -m stages.train capacity``); a train or
evaluate stage also runs its family's module (and evaluate its figures). Following every import of the
project's packages (``stages``, ``trainlab``) in
those files (also the ones inside functions, which run later) gives the code the stage runs; each
file must be listed in the stage's deps, itself or through a directory, or ``dvc status`` would call
stale outputs up to date after an edit there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

PACKAGES = ("stages", "trainlab")


def module_file(name: str) -> Path | None:
    """The file of module ``stages.x.y`` (a package's __init__.py), or None if there is none."""
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> set[str]:
    """The project's modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return found


def code_run_by(entry_modules: list[str]) -> set[Path]:
    """Every project file that importing the entry modules can load (packages' __init__ too)."""
    seen: set[str] = set()
    todo = list(entry_modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # parent packages run first
        path = module_file(name)
        if path is not None:
            todo += sorted(imports_of(path))
    files = {module_file(n) for n in seen} - {None}
    return {f.relative_to(REPO) for f in files} - {Path(f"{p}/__init__.py") for p in PACKAGES}  # asserted empty


def expanded_stages() -> dict[str, dict]:
    """dvc.yaml's stages with ``foreach`` expanded over params.yaml, as ``name@key``."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    out = {}
    for name, stage in pipeline.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        items = params[re.fullmatch(r"\$\{(\w+)\}", stage["foreach"]).group(1)]
        for key in items:
            text = yaml.safe_dump(stage["do"]).replace("${key}", str(key))
            out[f"{name}@{key}"] = yaml.safe_load(text)
    return out


def entry_modules(stage: dict) -> list[str]:
    words = stage["cmd"].split()
    module = words[words.index("-m") + 1]
    entries = [module]
    if module in ("stages.train", "stages.evaluate"):
        entries.append(f"trainlab.families.{words[-1]}")
    if module == "stages.evaluate":
        entries.append(f"trainlab.figures.{words[-1]}")
    return entries


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


STAGES = {name: s for name, s in expanded_stages().items() if "python -m stages." in s["cmd"]}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_root_runs_no_code(package):
    assert not (REPO / package / "__init__.py").read_text().strip()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_runs_is_in_its_deps(name):
    stage = STAGES[name]
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    missing = sorted(str(p) for p in code_run_by(entry_modules(stage)) if not covered(p, deps))
    assert not missing, f"{name} runs {', '.join(missing)} but dvc.yaml does not list it in its deps"


def test_the_closure_follows_imports_inside_functions():
    """A stage that imports a module only inside a function (as train does with the engine) still depends on it."""
    assert Path("trainlab/engine/population.py") in code_run_by(["trainlab.engine.executor"])
    assert Path("trainlab/families/common.py") in code_run_by(["trainlab.families.capacity"])
