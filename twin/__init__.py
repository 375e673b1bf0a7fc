"""Application wiring: the ``twin`` CLI, model provisioning, settings, the demo and ``twin serve``.

This package joins the others (telephony to voice, voice to knowledge and records).
It is the only place allowed to import from every package; the call path never
imports ``twin_training``.
"""

__all__: list[str] = []
