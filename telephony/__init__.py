"""The Asterisk edge: AudioSocket codec, server and call sessions, AMI client, caller simulator.

Nothing here imports the voice pipeline or training code; ``voice/`` plugs in as a
``telephony.server.CallHandler``. See docs/TELEPHONY.md.
"""

__all__: list[str] = []
