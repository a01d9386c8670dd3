"""Reading an oslo.config INI file (nova.conf): every assignment of every section, as written.

oslo.config's dialect, on the standard library's :mod:`configparser`:

- ``key = value`` or ``key: value`` (the first of ``=`` and ``:`` splits); keys are
  case-sensitive and taken as written (``transport-url`` is not ``transport_url``);
- ``#`` and ``;`` start a comment at the beginning of a line only: ``a = b # c`` is ``b # c``;
- values are never interpolated (``%(x)s`` and ``$x`` stay as they are);
- a line indented under an assignment continues its value (joined with a newline); a blank or
  comment line ends it;
- a value wholly in matching quotes (``"..."`` or ``'...'``) loses them (its first line only);
- a key may be assigned again: every assignment is kept in order (oslo's multi-valued options
  take them all, the others the last);
- a section may appear again and continues; ``[DEFAULT]`` is the only section whose name is
  case-sensitive (``[default]`` is another section, as in oslo.config), every other name is
  compared lower-case (``[OSLO_MESSAGING_RABBIT]`` is ``[oslo_messaging_rabbit]``); ``[DEFAULT]``
  gives nothing to the other sections (configparser's would).

One difference: a comment line indented under a multi-line value ends it here, while oslo.config
appends it to the value. Generated sample files never indent comments.
"""

from __future__ import annotations

import configparser
import typing
from pathlib import Path

from steward.errors import ConfigError
from steward.redact import mask_text

__all__ = ["DEFAULT_SECTION", "read_ini"]

DEFAULT_SECTION = "DEFAULT"

# configparser's own default section, which it copies into every other: a name no file uses.
_NO_DEFAULT_SECTION = "\x00steward: no default section"


class _Assignments(dict[str, typing.Any]):
    """A section's options, keeping the earlier assignments of a key assigned again.

    While it reads, configparser stores each assignment as the list of its lines (continuation
    lines are appended to it) and replaces it when the key comes again: the replaced list is
    kept here. Sections are stored in the same type; their values are never lists.
    """

    def __init__(self) -> None:
        super().__init__()
        self.earlier: dict[str, list[list[str]]] = {}

    def __setitem__(self, key: str, value: typing.Any) -> None:  # noqa: ANN401 - configparser's
        if isinstance(value, list) and key in self:
            previous = super().__getitem__(key)
            if isinstance(previous, list):
                self.earlier.setdefault(key, []).append(previous)
        super().__setitem__(key, value)


class _Parser(configparser.RawConfigParser):
    def __init__(self) -> None:
        super().__init__(
            dict_type=_Assignments,
            strict=False,
            empty_lines_in_values=False,
            interpolation=None,
            default_section=_NO_DEFAULT_SECTION,
            comment_prefixes=("#", ";"),
            inline_comment_prefixes=None,
            delimiters=("=", ":"),
        )

    def optionxform(self, optionstr: str) -> str:
        """Keep keys as written: oslo.config's are case-sensitive."""
        return optionstr


def read_ini(path: Path) -> dict[str, dict[str, list[str]]]:
    """Return section -> key -> every value assigned to it in ``path``, in the file's order.

    Section names other than ``DEFAULT`` are lower-cased (:func:`_folded_sections`). Raises
    :class:`~steward.errors.ConfigError` naming the file and the line for a file it cannot
    read; the line is shown with any credentials masked.
    """
    parser = _Parser()
    try:
        text = path.read_text(encoding="utf-8")
        parser.read_string(_folded_sections(text), source=str(path))
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {exc}") from exc
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"config file {str(path)!r} line {exc.lineno}: an assignment before any section "
            f"([DEFAULT] first?), got {mask_text(repr(exc.line.strip()))}"
        ) from exc
    except configparser.ParsingError as exc:
        # configparser's errors hold each line's repr; the file's own line reads better.
        file_lines = text.splitlines()
        lines = ", ".join(
            f"line {lineno} {mask_text(repr(file_lines[lineno - 1].strip()))}"
            for lineno, _ in exc.errors
        )
        raise ConfigError(
            f"config file {str(path)!r} is not an oslo.config INI file: expected `key = value`, "
            f"a [section] or a # comment, got {lines}"
        ) from exc
    except configparser.Error as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not an oslo.config INI file: {mask_text(str(exc))}"
        ) from exc
    # The sections' own dicts, not their proxies: only they hold the repeated assignments.
    raw = typing.cast("dict[str, dict[str, typing.Any]]", vars(parser)["_sections"])
    found: dict[str, dict[str, list[str]]] = {}
    for section in parser.sections():
        options = raw[section]
        into = found.setdefault(section, {})
        for key, value in options.items():
            earlier = options.earlier.get(key, []) if isinstance(options, _Assignments) else []
            values = [_unquoted("\n".join(lines).rstrip()) for lines in earlier]
            values.append(_unquoted(value if isinstance(value, str) else ""))
            into.setdefault(key, []).extend(values)
    return found


def _folded_sections(text: str) -> str:
    """Return ``text`` with its section names folded as oslo.config folds them, line for line.

    configparser's section names are case-sensitive; folding them before it reads makes
    ``[OSLO_MESSAGING_RABBIT]`` and a later ``[oslo_messaging_rabbit]`` one section, whose
    assignments keep the file's order.
    """
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.rstrip()
        if stripped.startswith("[") and stripped.endswith("]") and stripped != "[DEFAULT]":
            lines[index] = stripped.lower() + line[len(stripped) :]
    return "".join(lines)


def _unquoted(value: str) -> str:
    """Drop the quotes around a value's first line, as oslo.config does."""
    first, newline, rest = value.partition("\n")
    if len(first) >= 1 and first[0] == first[-1] and first[0] in "\"'":
        first = first[1:-1]
    return first + newline + rest
