"""Templates that only substitute columns, rendered without Jinja.

Most recipes' templates are literal text, ``{{ column }}`` and ``{% if column %}…{% else %}…
{% endif %}``. For those, a render is a concatenation; running it through the sandboxed Jinja
render costs more than the text it makes. ``compile_simple`` turns such a template, as Jinja
parsed it (its text already as Jinja reads it: newlines normalised, whitespace control applied),
into a plain function; any other template gets None and renders in the sandbox.

The function renders only what it can render exactly as the sandbox would: values that are
text, or null (printed as ""). Any other value — a number, a list, a column the row lacks —
raises ``NotSimple`` and the row renders in the sandbox, which gives it its text or its error.
``tests/transforms/test_compiled_template.py`` holds the two renders equal over random
templates and rows.
"""

from __future__ import annotations

from typing import Any, Callable

from jinja2 import nodes

Render = Callable[[dict[str, Any]], str]
# Names Jinja resolves itself, whatever the row holds.
_SPECIAL = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})


class NotSimple(Exception):
    """This row's values are not all text or null: render it in the sandbox."""


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, NotSimple)
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    raise NotSimple(name)


def _truth(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name, NotSimple)
    if value.__class__ is str:
        return value != ""
    if value is None:
        return False
    raise NotSimple(name)


def _pieces(body: list[nodes.Node]) -> list | None:
    """``body`` as a list of pieces: a str (literal), ``("name",)`` (a column printed) or
    ``(test, then, otherwise)`` (an if on a column); None if anything else is in it."""
    pieces: list = []
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    pieces.append(child.data)
                elif isinstance(child, nodes.Name) and child.ctx == "load" and child.name not in _SPECIAL:
                    pieces.append((child.name,))
                else:
                    return None
        elif isinstance(node, nodes.If):
            if not isinstance(node.test, nodes.Name) or node.test.name in _SPECIAL or node.elif_:
                return None
            then, otherwise = _pieces(node.body), _pieces(node.else_)
            if then is None or otherwise is None:
                return None
            pieces.append((node.test.name, then, otherwise))
        else:
            return None
    return pieces


def _render(pieces: list, fields: dict[str, Any], out: list[str]) -> None:
    for piece in pieces:
        if piece.__class__ is str:
            out.append(piece)
        elif len(piece) == 1:
            out.append(_text(fields, piece[0]))
        else:
            _render(piece[1] if _truth(fields, piece[0]) else piece[2], fields, out)


def compile_simple(ast: nodes.Template) -> Render | None:
    """A function rendering the parsed template ``ast`` (``env.parse(source)``), or None when
    the template does more than substitute columns."""
    pieces = _pieces(ast.body)
    if pieces is None:
        return None
    if all(piece.__class__ is str or len(piece) == 1 for piece in pieces):
        # The common case, flat: one join over a list built in one pass.
        flat = [(piece, None) if piece.__class__ is str else (None, piece[0]) for piece in pieces]

        def render_flat(fields: dict[str, Any]) -> str:
            return "".join(literal if name is None else _text(fields, name) for literal, name in flat)

        return render_flat

    def render(fields: dict[str, Any]) -> str:
        out: list[str] = []
        _render(pieces, fields, out)
        return "".join(out)

    return render
