"""Typed settings: defaults, configuration files, the environment and the command line.

Sources, later wins: the defaults < the files given as ``--config-file`` (TOML, or oslo.config
INI such as an existing nova.conf; a later file wins) < environment
variables ``STEWARD_<NAME>`` < command-line overrides. :func:`load_settings` reads them all and
reports a bad value as a :class:`~steward.errors.ConfigError` that names the option, the value,
where it came from and what is allowed.

Option names and defaults follow nova and oslo where they have one (``report_interval``,
``service_down_time``, ``rpc_response_timeout``...). Options marked *mutable* may change on
SIGHUP without a restart; the others need one.

A transport's options are a section of their own: ``settings.rabbit``
(:class:`RabbitSettings`) and ``settings.nats`` (:class:`NatsSettings`). Each of their options is
also accepted under its flat oslo name, in every source: ``rabbit_quorum_queue = true`` or
``[rabbit]`` ``quorum_queue = true`` in the file; ``STEWARD_RABBIT_QUORUM_QUEUE`` or
``STEWARD_RABBIT__QUORUM_QUEUE`` in the environment; ``rabbit_quorum_queue=True`` or
``rabbit={"quorum_queue": True}`` as keywords.

Credentials inside ``transport_url`` and ``database_url`` are masked whenever settings are shown:
in ``repr``/``str``, in :meth:`Settings.masked` and so in logs, reports and ``steward config show``.
:func:`mask_url` (defined in :mod:`steward.redact`, re-exported here) says what is kept and what
is replaced.

Entry points build one :class:`Settings` and pass it down (:mod:`steward.config.process` says who
else may read the process's settings).

The package: :mod:`~steward.config.settings` (the model), :mod:`~steward.config.rabbit` and
:mod:`~steward.config.nats` (the transports' sections), :mod:`~steward.config.loading`
(:func:`load_settings` and its errors), :mod:`~steward.config.process` (the process's settings).
"""

from __future__ import annotations

from steward.config._sources import ENV_NESTED_DELIMITER, ENV_PREFIX
from steward.config.loading import load_settings
from steward.config.nats import NatsSettings
from steward.config.process import get_settings, set_settings
from steward.config.rabbit import RabbitSettings
from steward.config.settings import Settings
from steward.redact import mask_url

__all__ = [
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "NatsSettings",
    "RabbitSettings",
    "Settings",
    "get_settings",
    "load_settings",
    "mask_url",
    "set_settings",
]
