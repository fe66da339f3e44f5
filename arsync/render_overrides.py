"""Company overrides of shipped templates: validated when saved, the last good version kept.

A source is refused, with the line at fault, for a syntax error, an unknown variable, an unsafe
construct (``{{ ''.__class__ }}``), an include of anything but a shipped template by its literal
name, or a failure on representative sample data. Only validated sources ever reach
:func:`arsync.render.render`.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from typing import Protocol

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.clock import Clock
from arsync.errors import InputError
from arsync.models_delivery import TemplateOverride
from arsync.render import (
    MAX_SIZE,
    NOTE_LIMIT,
    PARTS,
    environment,
    one_line,
    overlay_environment,
    override_filename,
)
from arsync.render_context import CONTEXT_KEYS, sample_contexts

#: ``firm.subject.j2``, ``de/firm.html.j2``, ``_layout.html.j2``, ``sent.txt.j2``.
NAME_RE = re.compile(r"^(?:[a-z]{2,3}(?:_[A-Z]{2})?/)?_?[a-z0-9][a-z0-9_]{0,63}"
                     r"\.(?P<part>subject|html|txt)\.j2$")
#: Large enough for any honest email, small enough that a paste accident is refused.
MAX_SOURCE_CHARS = 20_000


class TemplateValidationError(InputError):
    """An override was refused; ``line`` is the 1-based line at fault when there is one."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.problem = problem
        self.line = line


def override_path(kind: str, name: str) -> str:
    """``("email", "firm.subject.j2")`` → ``"email/firm.subject.j2"``, checked."""
    if kind not in PARTS:
        raise TemplateValidationError(f"{kind}/{name}", f"unknown kind {kind!r}")
    name = name if name.endswith(".j2") else name + ".j2"
    match = NAME_RE.match(name)
    if match is None or match["part"] not in PARTS[kind]:
        parts = ", ".join(f"<name>.{p}.j2" for p in PARTS[kind])
        raise TemplateValidationError(f"{kind}/{name}", f"bad template name (expected {parts})")
    return f"{kind}/{name}"


_REFERENCES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def _target(node: nodes.Node) -> nodes.Expr | None:
    """The template expression of an extends/include/import node."""
    target = getattr(node, "template", None)
    return target if isinstance(target, nodes.Expr) else None


def _first_line(ast: nodes.Template, node_type: type[nodes.Node], pred: object) -> int | None:
    for node in ast.find_all(node_type):
        if callable(pred) and pred(node):
            return node.lineno
    return None


def _check_static(ast: nodes.Template, path: str, allowed: set[str]) -> None:
    # First, before anything compiles the template: Jinja folds constant filter calls at
    # compile time, so ``'x'|center(10**9)`` would allocate a gigabyte right there.
    for const in ast.find_all(nodes.Const):
        if isinstance(const.value, int) and abs(const.value) > MAX_SIZE:
            raise TemplateValidationError(path, f"number larger than {MAX_SIZE}", const.lineno)
    env = environment()
    unknown = meta.find_undeclared_variables(ast) - CONTEXT_KEYS - set(env.globals)
    if unknown:
        located = sorted((_first_line(ast, nodes.Name, lambda n, v=v: n.name == v) or 0, v)
                         for v in unknown)
        line, var = located[0]
        known = ", ".join(sorted(CONTEXT_KEYS))
        raise TemplateValidationError(path, f"unknown variable {var!r} (known: {known})",
                                      line or None)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr: object = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value
        if isinstance(attr, str) and attr.startswith("_"):
            raise TemplateValidationError(path, f"unsafe construct: attribute {attr!r} is not "
                                          "allowed", node.lineno)
    for ref in ast.find_all(_REFERENCES):
        target = _target(ref)
        if not (isinstance(target, nodes.Const) and isinstance(target.value, str)):
            raise TemplateValidationError(path, "extends/include/import must name a template "
                                          "literally", ref.lineno)
        if target.value == path:
            raise TemplateValidationError(path, "a template cannot extend or include itself",
                                          ref.lineno)
        if target.value not in allowed:
            raise TemplateValidationError(path, f"cannot extend or include {target.value!r}: "
                                          "not a known template", ref.lineno)


def _line_of(exc: BaseException, path: str) -> int | None:
    # Jinja rewrites tracebacks so template frames carry the template's filename and line.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == override_filename(path)]
    return frames[-1].lineno if frames else None


def _dependants(env: jinja2.Environment, path: str) -> list[str]:
    """Templates of the same kind that extend, include or import ``path``."""
    assert env.loader is not None
    kind = path.split("/", 1)[0]
    found = []
    for name in env.list_templates(filter_func=lambda n: n.startswith(kind + "/")
                                   and n.endswith(".j2")):
        if name == path:
            continue
        ast = env.parse(env.loader.get_source(env, name)[0])
        if any(isinstance(t, nodes.Const) and t.value == path
               for t in map(_target, ast.find_all(_REFERENCES))):
            found.append(name)
    return found


def _check_render(kind: str, path: str, overrides: Mapping[str, str]) -> None:
    env = overlay_environment(overrides)
    # A partial (a layout) is judged by the templates that use it, as it is never sent alone.
    is_partial = path.rsplit("/", 1)[-1].startswith("_")
    targets = (_dependants(env, path) if is_partial else []) or [path]
    for target in targets:
        where = "" if target == path else f"breaks {target}: "
        for ctx in sample_contexts(kind):
            try:
                out = env.get_template(target).render(ctx.as_template_vars(kind))
            except SecurityError as exc:
                raise TemplateValidationError(path, f"{where}unsafe construct: {exc}",
                                              _line_of(exc, path)) from exc
            except jinja2.UndefinedError as exc:
                raise TemplateValidationError(path, f"{where}unknown variable or attribute: "
                                              f"{exc}", _line_of(exc, path)) from exc
            except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError,
                    RecursionError) as exc:
                raise TemplateValidationError(path, f"{where}fails on sample data: {exc}",
                                              _line_of(exc, path)) from exc
            if kind == "note" and len(one_line(out)) > NOTE_LIMIT:
                raise TemplateValidationError(
                    path, f"{where}renders to {len(one_line(out))} characters for a sample "
                    f"with {len(ctx.invoices)} invoices; notes must fit in {NOTE_LIMIT} (use "
                    "|numbers and |clip)")


def validate_override(kind: str, name: str, source: str, *,
                      others: Mapping[str, str] | None = None) -> None:
    """Raise :class:`TemplateValidationError` unless ``source`` may replace ``kind/name``.

    ``others`` are the company's other (already valid) overrides, which this one may include.
    """
    path = override_path(kind, name)
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateValidationError(path, f"longer than {MAX_SOURCE_CHARS} characters")
    env = environment()
    try:
        ast = env.parse(source, name=path, filename=override_filename(path))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateValidationError(path, f"syntax error: {exc.message}", exc.lineno) from exc
    others = {k: v for k, v in (others or {}).items() if k != path}
    assert env.loader is not None
    allowed = {n for n in env.loader.list_templates() if n.endswith(".j2")} | set(others)
    _check_static(ast, path, allowed)
    _check_render(kind, path, {**others, path: source})


class TemplateStore(Protocol):
    """Where a company's validated overrides live (in memory now, in the database later)."""

    def overrides(self, company: str) -> dict[str, str]:
        """The company's overrides by path, ready for ``render(..., overrides=...)``."""

    def save(self, company: str, kind: str, name: str, source: str) -> str:
        """Validate and store; on error raise and keep the previous version. Returns the path."""

    def delete(self, company: str, kind: str, name: str) -> None:
        """Go back to the shipped template."""


class MemoryTemplateStore:
    """A :class:`TemplateStore` in a dict; a bad save changes nothing."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}

    def overrides(self, company: str) -> dict[str, str]:
        return dict(self._data.get(company, {}))

    def save(self, company: str, kind: str, name: str, source: str) -> str:
        path = override_path(kind, name)
        candidate = {**self._data.get(company, {}), path: source}
        validate_override(kind, name, source, others=candidate)
        _revalidate_others(candidate, path)
        self._data[company] = candidate
        return path

    def delete(self, company: str, kind: str, name: str) -> None:
        path = override_path(kind, name)
        candidate = {k: v for k, v in self._data.get(company, {}).items() if k != path}
        _revalidate_others(candidate, path)
        self._data[company] = candidate


def _revalidate_others(candidate: Mapping[str, str], changed: str) -> None:
    # A new layout can break a child override that extends it: refuse the change instead.
    for path, source in candidate.items():
        if path == changed:
            continue
        kind, name = path.split("/", 1)
        try:
            validate_override(kind, name, source, others=candidate)
        except TemplateValidationError as exc:
            raise TemplateValidationError(
                changed, f"would break {path}: {exc.problem}", None) from exc


class DbTemplateStore:
    """A :class:`TemplateStore` in the ``template_overrides`` table; ``company`` is the
    connection id (as text). A refused save or delete changes nothing."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def overrides(self, company: str) -> dict[str, str]:
        with Session(self.engine) as s:
            rows = s.execute(select(TemplateOverride.path, TemplateOverride.source)
                             .where(TemplateOverride.connection_id == int(company)))
            return {path: source for path, source in rows}

    def save(self, company: str, kind: str, name: str, source: str) -> str:
        path = override_path(kind, name)
        candidate = {**self.overrides(company), path: source}
        validate_override(kind, name, source, others=candidate)
        _revalidate_others(candidate, path)
        with Session(self.engine) as s, s.begin():
            row = s.get(TemplateOverride, (int(company), path))
            if row is None:
                s.add(TemplateOverride(connection_id=int(company), path=path, source=source,
                                       updated_at=self.clock.now()))
            else:
                row.source, row.updated_at = source, self.clock.now()
        return path

    def delete(self, company: str, kind: str, name: str) -> None:
        path = override_path(kind, name)
        candidate = {k: v for k, v in self.overrides(company).items() if k != path}
        _revalidate_others(candidate, path)
        with Session(self.engine) as s, s.begin():
            s.execute(sa_delete(TemplateOverride).where(
                TemplateOverride.connection_id == int(company), TemplateOverride.path == path))
