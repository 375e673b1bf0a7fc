"""The assistant's deterministic knowledge and safety layer (no LLM, no audio here).

- ``knowledge.profile``: the practice profile (YAML) -> typed, validated dataclasses.
- ``knowledge.practice_info``: spoken French answers about the practice, from the profile.
- ``knowledge.phrasing``: French phrasing for speech (dates, times, slots, phone numbers).
- ``knowledge.safety``: red flags, medical-advice refusal, handoff rules, escalation.
- ``knowledge.prompts``: the short system prompt for the small model.
- ``knowledge.consent``: the greeting with the recording notice; detecting an objection.
- ``knowledge.evaluation``: recall/precision of the safety rules on labelled sets.

Import the submodules directly; this package imports nothing at import time.
"""

__all__: list[str] = []
