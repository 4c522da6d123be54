"""The project's code habits that no linter checks for us.

Optional arguments are keyword-only: a call reads ``fit(data, epochs=3)``, never
``fit(data, 3)``, so adding or reordering options never changes what an old call means.
Where a framework fixes the signature (Rasa's ``GraphComponent.load``, a Sanic handler,
a method a library calls positionally), the ``def`` line says so with a comment
``# positional: <why>`` and is left alone.

Big modules say why: a module outside tests of more than ``MAX_LINES`` lines must say in
its docstring why it is one module (a line containing ``One module because``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rasa_llm", "channels", "training", "bench", "bot/actions")
MARK = "# positional:"
MAX_LINES = 400
WHY_BIG = "One module because"


def _sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if ".venv" not in path.parts
    )


def positional_defaults(source: str) -> list[tuple[int, str]]:
    """Return (line, name) of each function whose defaulted arguments can be given by position.

    A ``def`` is exempt when one of its lines up to the colon carries ``# positional:``
    followed by a reason.
    """
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if not node.args.defaults:  # defaults of positional (or positional-only) parameters
            continue
        header_end = node.body[0].lineno - 1 if node.body else node.lineno
        header = lines[node.lineno - 1 : max(header_end, node.lineno)]
        marked = [line.split(MARK, 1)[1].strip() for line in header if MARK in line]
        if marked and all(marked):
            continue
        found.append((node.lineno, node.name))
    return found


def test_the_check_finds_positional_defaults_and_honours_a_reasoned_mark() -> None:
    source = (
        "def a(x, y=1): pass\n"
        "def b(x, *, y=1): pass\n"
        "def c(x, y=1):  # positional: Rasa calls it so\n    pass\n"
        "def d(x, y=1):  # positional:\n    pass\n"
        "class K:\n    async def e(self, z=None): pass\n"
    )
    assert positional_defaults(source) == [(1, "a"), (5, "d"), (8, "e")]


def test_optional_arguments_are_keyword_only() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in _sources()
        for line, name in positional_defaults(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "make these arguments keyword-only (put them after `*`), or mark a signature a "
        f"framework fixes with `{MARK} <why>` on its def line:\n" + "\n".join(offenders)
    )


def test_a_big_module_says_why_it_is_one() -> None:
    offenders = []
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) > MAX_LINES:
            if WHY_BIG not in (ast.get_docstring(ast.parse(source)) or ""):
                offenders.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
    assert not offenders, (
        f"split these modules by job, or say in the docstring why each is one module "
        f"('{WHY_BIG} ...'):\n" + "\n".join(offenders)
    )
