"""Rendering: one sandboxed Jinja2 environment behind a single :func:`render` function.

Templates live in ``templates/<kind>/<name>.<part>.j2`` (English) and, for other languages,
``templates/<kind>/<lang>/<name>.<part>.j2``; lookup tries the customer's locale (``de_CH``), its
language (``de``), then English. A stage's template name falls back to its alias (``final_notice``
→ ``final``) and then to its tone, so a policy may name templates nobody has written yet.
Company overrides (already validated by :mod:`arsync.render_overrides`) shadow shipped files by
path, e.g. ``{"email/firm.subject.j2": "..."}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, overload

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from arsync.errors import ArsyncError
from arsync.render_context import InvoiceLine, MessageContext, Total
from arsync.render_sms import RenderedSms, finish_sms
from arsync.resources import templates_dir

log = logging.getLogger(__name__)

Kind = Literal["email", "sms", "note"]
PARTS: dict[str, tuple[str, ...]] = {"email": ("subject", "html", "txt"), "sms": ("txt",),
                                     "note": ("txt",)}
NOTE_KINDS = ("sent", "escalated", "promise", "dispute", "plan", "cancelled")
#: Xero History notes are cut at 250 characters (QuickBooks allows 4000): the tighter one wins.
NOTE_LIMIT = 250
#: The default policy's template names and the shipped template each one reads.
ALIASES = {"reminder_due_soon": "before_due", "instalment_due_soon": "before_due",
           "payment_plan_offer": "plan_offer", "final_notice": "final"}
DEFAULT_LOCALE = "en_US"


class RenderError(ArsyncError):
    """A shipped template failed to render: a bug in arsync, not in the caller's data."""


@dataclass(frozen=True)
class RenderedEmail:
    """The three parts of an email, and the template files they came from."""

    subject: str
    html: str
    text: str
    templates: tuple[str, ...]
    locale: str


def _locale(ctx: jinja2.runtime.Context) -> str:
    return str(ctx.get("locale") or DEFAULT_LOCALE)


@jinja2.pass_context
def money(ctx: jinja2.runtime.Context, amount: Decimal | int, currency: str) -> str:
    """``{{ inv.balance|money(inv.currency) }}`` in the message's locale; floats are refused."""
    if isinstance(amount, float) or not isinstance(amount, Decimal | int):
        raise TypeError(f"money needs a Decimal amount, not {type(amount).__name__}")
    return format_currency(amount, currency, locale=_locale(ctx))


@jinja2.pass_context
def date_filter(ctx: jinja2.runtime.Context, value: date, fmt: str = "medium") -> str:
    """``{{ inv.due_date|date }}`` (or ``|date('long')``) in the message's locale."""
    return format_date(value, fmt, locale=_locale(ctx))


@jinja2.pass_context
def money_list(ctx: jinja2.runtime.Context, totals: tuple[Total, ...], sep: str = " + ") -> str:
    """``{{ totals|money_list }}``: each currency's total, never summed across currencies."""
    return sep.join(format_currency(t.amount, t.currency, locale=_locale(ctx)) for t in totals)


def clip(value: object, length: int) -> str:
    """``{{ text|clip(40) }}``: at most ``length`` characters, ending in an ellipsis if cut."""
    text = str(value)
    return text if len(text) <= length else text[: max(length - 1, 0)] + "…"


def numbers(invoices: tuple[InvoiceLine, ...], max_chars: int = 80, more: str = "more") -> str:
    """``{{ invoices|numbers(80) }}``: "INV-1, INV-2 +48 more", never longer than ``max_chars``."""
    shown: list[str] = []
    for i, inv in enumerate(invoices):
        rest = len(invoices) - i - 1
        candidate = ", ".join([*shown, clip(inv.number, 24)])
        tail = f" +{rest} {more}" if rest else ""
        if len(candidate) + len(tail) > max_chars and shown:
            return ", ".join(shown) + f" +{len(invoices) - len(shown)} {more}"
        shown.append(clip(inv.number, 24))
    return clip(", ".join(shown), max_chars)


#: Cap on what one expression may build: company templates must not exhaust the worker's memory.
MAX_SIZE = 100_000


class GuardedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on ``'x' * n``, ``a ** b`` and ``range``."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "**" and isinstance(right, int | Decimal) and not -64 <= right <= 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) \
                        and len(seq) * n > MAX_SIZE:
                    raise SecurityError(f"repetition longer than {MAX_SIZE}")
        return super().call_binop(context, operator, left, right)


def limited_range(*args: int) -> range:
    """``range`` for templates, at most 1000 items (Jinja's own cap is 100000)."""
    rng = range(*args)
    if len(rng) > 1000:
        raise SecurityError("range longer than 1000")
    return rng


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


def make_environment(loader: jinja2.BaseLoader) -> GuardedSandbox:
    """The environment's configuration, in one place (used once, plus overlays)."""
    env = GuardedSandbox(loader=loader, undefined=jinja2.StrictUndefined,
                               autoescape=_autoescape, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True, auto_reload=False)
    env.filters.update(money=money, date=date_filter, money_list=money_list, clip=clip,
                       numbers=numbers)
    env.globals["range"] = limited_range
    return env


@lru_cache(maxsize=1)
def environment() -> GuardedSandbox:
    """The one environment over the shipped templates."""
    return make_environment(jinja2.FileSystemLoader(str(templates_dir())))


class OverrideLoader(jinja2.BaseLoader):
    """Company overrides by path; the filename marks them in tracebacks (for line numbers)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        source = self.sources[template]
        return source, override_filename(template), lambda: self.sources.get(template) == source

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def override_filename(path: str) -> str:
    return f"<override {path}>"


def overlay_environment(overrides: Mapping[str, str]) -> jinja2.Environment:
    """The one environment with ``overrides`` shadowing shipped files (uncached)."""
    # An overlay shares the environment's configuration and filters but has its own template
    # cache, so one company's templates never leak into another's render.
    base = environment()
    assert base.loader is not None
    return base.overlay(loader=jinja2.ChoiceLoader([OverrideLoader(dict(overrides)),
                                                     base.loader]))


@lru_cache(maxsize=64)
def _overlay(items: tuple[tuple[str, str], ...]) -> jinja2.Environment:
    return overlay_environment(dict(items))


def environment_for(overrides: Mapping[str, str] | None) -> jinja2.Environment:
    """The environment seeing ``overrides`` on top of the shipped templates."""
    if not overrides:
        return environment()
    return _overlay(tuple(sorted(overrides.items())))


@lru_cache(maxsize=256)
def usable_locale(locale: str | None) -> str:
    """``locale`` as Babel knows it (``de-DE`` → ``de_DE``), or en_US when it is unknown."""
    try:
        return str(Locale.parse((locale or DEFAULT_LOCALE).replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        # A customer record with a junk language must not stop their reminder going out.
        return DEFAULT_LOCALE


def language_chain(locale: str) -> list[str]:
    """``de_CH`` → ``["de_CH", "de", ""]``; the empty string is the English root."""
    try:
        loc = Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return [""]
    chain = [str(loc)] if loc.territory else []
    return [*chain, loc.language, ""]


def template_path(kind: str, name: str, part: str, lang: str = "") -> str:
    folder = f"{kind}/{lang}/" if lang else f"{kind}/"
    return f"{folder}{name}.{part}.j2"


def resolve(env: jinja2.Environment, kind: str, name: str, part: str, *, tone: str | None,
            locale: str) -> jinja2.Template:
    """The first template that exists: language outermost, then name, alias, tone."""
    candidates = list(dict.fromkeys(c for c in (name, ALIASES.get(name), tone) if c))
    for lang in language_chain(locale):
        for cand in candidates:
            try:
                return env.get_template(template_path(kind, cand, part, lang))
            except jinja2.TemplateNotFound:
                continue
    raise RenderError(f"no {kind} template for {' / '.join(candidates)} ({part}, {locale})")


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy_text(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_RUNS.sub("\n\n", lines) + "\n"


def one_line(text: str) -> str:
    return " ".join(text.split())


def render_parts(env: jinja2.Environment, kind: str, name: str,
                 ctx: MessageContext) -> tuple[dict[str, str], tuple[str, ...]]:
    """Raw output of each part of ``kind`` and the template paths used (errors propagate)."""
    variables = ctx.as_template_vars(kind)
    locale = variables["locale"] = usable_locale(variables["locale"])
    tone = ctx.tone if kind != "note" else None
    out: dict[str, str] = {}
    paths: list[str] = []
    for part in PARTS[kind]:
        template = resolve(env, kind, name, part, tone=tone, locale=locale)
        out[part] = template.render(variables)
        paths.append(template.name or "")
    return out, tuple(paths)


@overload
def render(kind: Literal["email"], name: str, ctx: MessageContext, *,
           overrides: Mapping[str, str] | None = None) -> RenderedEmail: ...
@overload
def render(kind: Literal["sms"], name: str, ctx: MessageContext, *,
           overrides: Mapping[str, str] | None = None) -> RenderedSms: ...
@overload
def render(kind: Literal["note"], name: str, ctx: MessageContext, *,
           overrides: Mapping[str, str] | None = None) -> str: ...


def render(kind: Kind, name: str, ctx: MessageContext, *,
           overrides: Mapping[str, str] | None = None) -> RenderedEmail | RenderedSms | str:
    """Render template ``name`` of ``kind`` (``email``, ``sms`` or ``note``) for ``ctx``.

    ``overrides`` must hold only validated sources; should one still fail on real data, the
    shipped template is used instead, because a reminder in default wording beats none.
    """
    if kind not in PARTS:
        raise ValueError(f"unknown template kind {kind!r}")
    parts: dict[str, str] | None = None
    if overrides:
        try:
            parts, paths = render_parts(environment_for(overrides), kind, name, ctx)
        except Exception as exc:  # a company's template must never stop the message
            log.warning("override for %s %r failed (%s: %s); using the shipped template",
                        kind, name, exc.__class__.__name__, exc)
    if parts is None:
        try:
            parts, paths = render_parts(environment(), kind, name, ctx)
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError,
                LookupError) as exc:
            raise RenderError(f"{kind} template {name!r} failed: {exc}") from exc
    if kind == "email":
        return RenderedEmail(one_line(parts["subject"]), parts["html"].strip() + "\n",
                             tidy_text(parts["txt"]), paths, usable_locale(ctx.locale_for(kind)))
    if kind == "sms":
        return finish_sms(parts["txt"], paths[0])
    return clip(one_line(parts["txt"]), NOTE_LIMIT)
