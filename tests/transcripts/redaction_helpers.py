"""One real Redactor (spaCy fr_core_news_sm) per test process, shared by the redaction tests."""

from __future__ import annotations

from functools import lru_cache

from knowledge.profile import PracticeProfile, default_profile_path, load_profile
from transcripts.redaction import Redactor


@lru_cache(maxsize=1)
def loaded_redactor() -> Redactor:
    r = Redactor()
    r.load()
    return r


@lru_cache(maxsize=1)
def demo_profile() -> PracticeProfile:
    return load_profile(default_profile_path())
