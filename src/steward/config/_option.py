"""How one option is declared: its default, its description and its flags.

Each option is a pydantic field whose ``json_schema_extra`` carries steward's flags: ``mutable``
(a SIGHUP reload may change it), ``secret`` (credentials masked when shown) and, for the options
of a transport's section, ``flat`` (the oslo.messaging name it is also accepted under).
"""

from __future__ import annotations

import typing

from pydantic import BaseModel, Field

__all__ = ["flag", "flat_name", "option"]


def option(
    default: typing.Any,  # noqa: ANN401 - each option has its own type
    description: str,
    *,
    mutable: bool = False,
    secret: bool = False,
    flat: str | None = None,
    **constraints: typing.Any,  # noqa: ANN401 - pydantic Field constraints
) -> typing.Any:  # noqa: ANN401 - pydantic's Field() is typed this way too
    """Declare an option: ``default``, ``description``, its flags and pydantic's constraints.

    ``flat`` is the oslo name of a transport section's option (``rabbit_quorum_queue`` for
    ``rabbit.quorum_queue``): the environment, a config file and keyword arguments accept it too.
    """
    extra: dict[str, bool | str] = {"mutable": mutable, "secret": secret}
    if flat is not None:
        extra["flat"] = flat
    return Field(default, description=description, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


def flag(model: type[BaseModel], name: str, which: str) -> bool:
    """Return whether option ``name`` of ``model`` is marked ``which`` (mutable, secret)."""
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and extra.get(which) is True


def flat_name(model: type[BaseModel], name: str) -> str | None:
    """Return the flat (oslo) name option ``name`` of a transport section is also accepted as."""
    extra = model.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("flat"), str):
        return typing.cast("str", extra["flat"])
    return None
