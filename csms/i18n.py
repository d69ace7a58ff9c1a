"""Languages of the admin, the driver portal and the public map (gettext with Babel).

The catalogs are the ``.po`` files in ``csms/locale/<lang>/LC_MESSAGES/messages.po`` and in the
directories plugins return from the ``locale_dirs`` hook. They are read once when the app is
built and compiled in memory (Babel's ``read_po`` and ``write_mo``): there is no build step and
no binary ``.mo`` file to keep in step with its source. The msgids are the English texts, so
English needs no catalog and a text without a translation shows in English.

The request's language lives in a context variable (like the viewing time zone, see
:mod:`csms.admin.templating`): the admin sets it from the signed-in user's choice, every page from
the browser's ``Accept-Language`` otherwise, else the installation's ``admin_language``.
Templates translate with ``{{ _("Text") }}`` / ``{% trans %}`` (Jinja's i18n extension), Python
code with :func:`gettext`; number and date formatting (:func:`format_decimal`,
:func:`date_pattern`) follow the same language.

Extract and update the catalogs (``babel.cfg`` at the top of the repository)::

    .venv/bin/pybabel extract -F babel.cfg -o /tmp/messages.pot --no-location --omit-header .
    .venv/bin/pybabel update -i /tmp/messages.pot -d csms/locale --no-wrap --no-fuzzy-matching --ignore-obsolete
    sed -i '/^"PO[T]*-[A-Za-z]*-Date: /d' csms/locale/*/LC_MESSAGES/messages.po
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal as babel_format_decimal
from babel.numbers import get_decimal_symbol
from babel.support import Translations
from jinja2 import pass_context

if TYPE_CHECKING:
    from jinja2 import Environment

LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch", "nl": "Nederlands", "fr": "Français"}
"""The languages the CSMS speaks, each under its own name (for a language menu)."""
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).parent / "locale"

# Dates as people write them in each language (24-hour times everywhere); English keeps ISO 8601.
_DATE_PATTERNS = {"en": "%Y-%m-%d", "de": "%d.%m.%Y", "nl": "%d-%m-%Y", "fr": "%d/%m/%Y"}

_language: ContextVar[str] = ContextVar("csms_language", default=DEFAULT_LANGUAGE)
_installation = {"language": DEFAULT_LANGUAGE}  # the admin_language setting, for work outside a request
_catalogs: dict[str, NullTranslations] = {}
_NO_TRANSLATION = NullTranslations()


def catalog_path(directory: str | Path, language: str) -> Path:
    return Path(directory) / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(path: Path, language: str) -> Translations:
    """A ``.po`` file compiled in memory (fuzzy entries left out, as ``pybabel compile`` does)."""
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=8)
def load_catalogs(plugin_dirs: tuple[str, ...] = ()) -> dict[str, NullTranslations]:
    """Every language's translations: the plugins' catalogs merged with the core's (the core's
    win where both translate the same text)."""
    out: dict[str, NullTranslations] = {}
    for language in LANGUAGES:
        if language == DEFAULT_LANGUAGE:
            continue
        merged: Translations | None = None
        for directory in (*plugin_dirs, str(LOCALE_DIR)):
            path = catalog_path(directory, language)
            if not path.is_file():
                continue
            compiled = compile_catalog(path, language)
            merged = compiled if merged is None else merged.merge(compiled)
        if merged is not None:
            out[language] = merged
    return out


def install(env: Environment, plugin_locale_dirs: Iterable[str | Path] = ()) -> None:
    """Load the catalogs (the core's and the plugins') and give ``env`` Jinja's i18n extension
    with ``_``, ``gettext`` and ``ngettext`` in the request's language (autoescaped, ``%(name)s``
    placeholders filled from keyword arguments)."""
    _catalogs.clear()
    _catalogs.update(load_catalogs(tuple(str(d) for d in plugin_locale_dirs)))
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_template_gettext, _template_ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["languages"] = LANGUAGES


def translations(language: str | None = None) -> NullTranslations:
    """The translations of ``language`` (default: the request's); English: none."""
    return _catalogs.get(language or _language.get(), _NO_TRANSLATION)


def current_language() -> str:
    """The language of this request (see :func:`use_language`)."""
    return _language.get()


def use_language(language: str) -> str:
    """Make ``language`` this request's language (unknown names: the default); returns it."""
    chosen = language if language in LANGUAGES else DEFAULT_LANGUAGE
    _language.set(chosen)
    return chosen


@contextmanager
def in_language(language: str) -> Iterator[str]:
    """Texts in ``language`` (unknown names or "": the installation's) inside the block, such as
    an e-mail written for its recipient by a background task; the language before it after."""
    chosen = language if language in LANGUAGES else default_language()
    token = _language.set(chosen)
    try:
        yield chosen
    finally:
        _language.reset(token)


def set_default_language(language: str) -> None:
    """The installation's ``admin_language`` (set when the app is built)."""
    _installation["language"] = language if language in LANGUAGES else DEFAULT_LANGUAGE


def default_language() -> str:
    """The installation's ``admin_language``: for people who chose none, outside a request too."""
    return _installation["language"]


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the request's language, ``%(name)s`` placeholders filled from ``variables``."""
    text = translations().gettext(message) if message else ""
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    """The singular or plural of a message for ``n`` in the request's language; ``%(num)s`` is ``n``."""
    text = translations().ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def N_(message: str) -> str:
    """Marks ``message`` for extraction without translating it yet (a label translated where it
    is shown, such as a ``NavItem``'s)."""
    return message


class TranslatedError(Exception):
    """An error whose message people may see: an English text marked with :func:`N_` whose
    ``%(name)s`` placeholders ``params`` fill, worded when it is read (``str(exc)``,
    ``exc.message``) in the language of that moment: the viewer's on a page (which sets it before
    any handler runs), English in the REST API and the logs. A value may be another such error
    (worded with it)."""

    def __init__(self, text: str, /, **params: Any) -> None:
        super().__init__(text)
        self.text = text
        self.params = params

    @property
    def message(self) -> str:
        return gettext(self.text, **self.params)

    def __str__(self) -> str:
        return self.message


@pass_context
def _template_gettext(context: Any, message: str) -> str:
    if not message:  # gettext("") is the catalog's header
        return ""
    return translations(context.get("language")).gettext(message)


@pass_context
def _template_ngettext(context: Any, singular: str, plural: str, n: int) -> str:
    return translations(context.get("language")).ngettext(singular, plural, n)


# -- choosing the language ------------------------------------------------------------------------

def accepted_languages(header: str) -> list[str]:
    """The language tags of an ``Accept-Language`` header, most wanted first (``q=0`` and ``*``
    left out)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(header: str) -> str | None:
    """The language of ours the browser asks for first (``de-CH`` is ``de``), or None."""
    from babel.core import negotiate_locale

    return negotiate_locale(accepted_languages(header or ""), list(LANGUAGES), sep="-")


def installation_language(connection: Any) -> str:
    """The installation's ``admin_language``."""
    settings = getattr(getattr(getattr(connection, "app", None), "state", None), "admin_settings", None)
    language = getattr(settings, "language", DEFAULT_LANGUAGE)
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def language_for(connection: Any, own: str = "") -> str:
    """The language of a request: the person's own choice (``own``), else the first of ours the
    browser's ``Accept-Language`` asks for, else the installation's ``admin_language``."""
    if own in LANGUAGES:
        return own
    return negotiate(connection.headers.get("accept-language", "")) or installation_language(connection)


def use_request_language(connection: Any, own: str = "") -> str:
    """:func:`language_for` made this request's language."""
    return use_language(language_for(connection, own))


# -- numbers and dates ----------------------------------------------------------------------------

@lru_cache(maxsize=8)
def babel_locale(language: str) -> Locale:
    return Locale.parse(language)


def format_decimal(value: Any, pattern: str, language: str | None = None) -> str:
    """``value`` with a Babel/CLDR number ``pattern`` (``#,##0.00``) in the request's language."""
    return babel_format_decimal(Decimal(str(value)), format=pattern, locale=babel_locale(language or _language.get()))


def decimal_symbol(language: str | None = None) -> str:
    """The decimal separator of the request's language (``,`` in German, Dutch and French)."""
    return get_decimal_symbol(babel_locale(language or _language.get()))


def date_pattern(language: str | None = None) -> str:
    """The ``strftime`` pattern of a date in the request's language (``%d.%m.%Y`` in German)."""
    return _DATE_PATTERNS.get(language or _language.get(), _DATE_PATTERNS[DEFAULT_LANGUAGE])
