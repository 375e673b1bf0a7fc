"""Call-control backends for handoff (:class:`telephony.session.CallControl`).

* :class:`telephony.session.NullCallControl` - no AMI: ending the bot's leg is the
  handoff (the dialplan queues every call whose ``TWIN_OUTCOME`` is not ``done``).
* :class:`AmiCallControl` - sets ``TWIN_*`` channel variables through AMI and, in
  ``redirect`` mode, also redirects the channel to the handoff context.
* :class:`HandoffOnlyHandler` - a call handler used when the assistant cannot start
  (LLM or STT down): every caller goes straight to the secretaries, never to silence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from telephony.ami import AmiClient, AmiError
from telephony.session import CallSession

__all__ = ["AmiCallControl", "HandoffOnlyHandler", "RedirectTarget"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedirectTarget:
    context: str = "twin-handoff"
    exten: str = "s"
    priority: int = 1


class AmiCallControl:
    """Handoff through AMI: Setvar on the call's channel, optional Redirect."""

    def __init__(self, *, ami: AmiClient, redirect: RedirectTarget | None = None) -> None:
        self.ami = ami
        self.redirect = redirect

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        try:
            ok = await self.ami.set_call_variables(call_id, variables)
        except AmiError as exc:
            logger.error("call %s: AMI could not set %s: %s", call_id, sorted(variables), exc)
            return False
        if ok and self.redirect is not None and variables.get("TWIN_OUTCOME") == "handoff":
            chan = self.ami.call_channel(call_id)
            if chan is not None:
                try:
                    await self.ami.redirect(chan.channel, context=self.redirect.context,
                                            exten=self.redirect.exten,
                                            priority=self.redirect.priority)
                except AmiError as exc:  # ending the leg still reaches the queue
                    logger.error("call %s: AMI redirect failed: %s", call_id, exc)
        return ok

    async def lookup_call(self, call_id: str, *, wait_s: float = 0.3) -> tuple[str, str] | None:
        """(channel, caller number) of a call, from the dialplan's VarSet event."""
        chan = self.ami.call_channel(call_id) or await self.ami.wait_call_channel(call_id, wait_s)
        return (chan.channel, chan.caller_number) if chan is not None else None


class HandoffOnlyHandler:
    """Every call goes to a human at once (the assistant is unavailable)."""

    def __init__(self, *, reason: str = "bot_failure", summary: str = "Assistant indisponible"
                 ) -> None:
        self.reason = reason
        self.summary = summary

    async def __call__(self, session: CallSession) -> None:
        await session.handoff(reason=self.reason, summary=self.summary)
