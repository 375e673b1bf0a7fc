"""``twin knowledge``: validate a practice profile, test the safety rules, ask them."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["cli"]




def _quiet_red_flag_log() -> None:
    """Silence the per-red-flag log lines for this command only (the level is put back when
    the command ends, so a caller in the same process, a test say, keeps its logging)."""
    import logging

    logger = logging.getLogger("knowledge.safety")
    level = logger.level
    logger.setLevel(logging.ERROR)
    click.get_current_context().call_on_close(lambda: logger.setLevel(level))

@click.group("knowledge")
def cli() -> None:
    """Validate the practice profile, test the safety rules."""


@cli.command("validate")
@click.argument("profile", required=False, type=click.Path(dir_okay=False, path_type=Path))
def validate(profile: Path | None) -> None:
    """Validate a practice profile YAML (default: the demo profile)."""
    from knowledge.profile import ProfileError, default_profile_path, load_profile

    path = profile or default_profile_path()
    try:
        p = load_profile(path)
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"OK {path}: {p.practice.name} — {len(p.practitioners)} practitioners, "
               f"{len(p.appointment_types)} appointment types, {len(p.faq)} FAQ entries, "
               f"{len(p.closures)} closures")


@cli.command("check-rules")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Rules YAML (default: knowledge/rules/safety.yaml).")
@click.option("--labelled", "labelled_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled set YAML (default: knowledge/labelled/safety_fr.yaml).")
@click.option("--all", "show_all", is_flag=True, help="List every utterance, not only errors.")
def check_rules(rules_path: Path | None, labelled_path: Path | None, show_all: bool) -> None:
    """Per-category recall/precision of the safety rules on the labelled set.

    Exits with status 1 if red-flag recall is below 100 % or a rule's own
    examples fail.
    """

    from knowledge.evaluation import evaluate, load_labelled
    from knowledge.safety import CATEGORIES, RulesError, SafetyRules

    _quiet_red_flag_log()  # one line per red flag is noise here

    try:
        rules = SafetyRules.load(rules_path)
        items = load_labelled(labelled_path)
    except (RulesError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = evaluate(rules, items)
    click.echo(f"{len(rules.rules)} rules, {len(items)} labelled utterances\n")
    click.echo(f"{'category':<16}{'support':>8}{'predicted':>10}{'recall':>9}{'precision':>11}")
    for cat in CATEGORIES:
        s = report.scores[cat]
        click.echo(f"{cat:<16}{s.support:>8}{s.predicted:>10}{s.recall:>9.1%}{s.precision:>11.1%}")
    click.echo("")
    click.echo(f"red-flag recall (emergency + suicide): {report.red_flag_caught}/"
               f"{report.red_flag_total} = {report.red_flag_recall:.1%}")
    click.echo(f"false positives on ordinary calls: {report.negatives_flagged}/"
               f"{report.negatives_total} = {report.false_positive_rate:.1%} "
               f"({report.negatives_red_flagged} sent to emergency)")
    click.echo(f"assess() latency: p50 {report.percentile_ms(0.5):.3f} ms, "
               f"p95 {report.percentile_ms(0.95):.3f} ms")
    rows = report.items if show_all else report.confusions
    if rows:
        click.echo("\nconfusions (label -> verdict, rule, matched text):" if not show_all
                   else "\nall utterances:")
        for item, verdict in rows:
            mark = "  " if item.label == verdict.category else "!!"
            click.echo(f"{mark} {item.label:>14} -> {verdict.category:<14} "
                       f"{verdict.rule_id or '-':<22} {verdict.matched!r:<30} {item.text}")
    held_out_missed = 0
    if labelled_path is None:
        from knowledge.evaluation import default_labelled_path

        holdouts = sorted(default_labelled_path().parent.glob("safety_fr_holdout*.yaml"),
                          key=lambda p: (len(p.stem), p.stem))
        if holdouts:
            click.echo("\nheld-out sets:")
        for path in holdouts:
            r = evaluate(rules, load_labelled(path))
            held_out_missed += len(r.missed_red_flags)
            click.echo(f"  {path.name:<28} red flags {r.red_flag_caught}/{r.red_flag_total}, "
                       f"false positives {r.negatives_flagged}/{r.negatives_total}")
            for item, verdict in r.missed_red_flags:
                click.echo(f"  !! {item.label:>14} -> {verdict.category:<14} {item.text}")
    problems = rules.check_examples()
    if problems:
        click.echo("\nrule examples:")
        for p in problems:
            click.echo(f"  {p}")
    if report.red_flag_recall < 1.0 or problems or held_out_missed:
        raise SystemExit(1)


@cli.command("assess")
@click.argument("text", nargs=-1, required=True)
def assess(text: tuple[str, ...]) -> None:
    """Show the safety verdict for one utterance."""
    from knowledge.safety import SafetyRules, normalize

    utterance = " ".join(text)
    verdict = SafetyRules.load().assess(utterance)
    click.echo(f"normalised: {normalize(utterance)}")
    click.echo(f"category:   {verdict.category} (rule {verdict.rule_id}, priority "
               f"{verdict.priority}, language {verdict.language})")
    if verdict.matched:
        click.echo(f"matched:    {verdict.matched!r}")
    if verdict.also:
        click.echo(f"also:       {', '.join(verdict.also)}")
    if verdict.response:
        click.echo(f"say:        {verdict.response}")


@cli.command("ask")
@click.argument("topic", nargs=-1, required=True)
@click.option("--profile", type=click.Path(dir_okay=False, path_type=Path))
def ask(topic: tuple[str, ...], profile: Path | None) -> None:
    """Answer a practice question from the profile (a topic or free text)."""
    from knowledge.practice_info import answer_practice_question
    from knowledge.profile import ProfileError, default_profile_path, load_profile

    try:
        p = load_profile(profile or default_profile_path())
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(answer_practice_question(p, " ".join(topic)))


@cli.command("prompt")
@click.option("--profile", type=click.Path(dir_okay=False, path_type=Path))
def prompt(profile: Path | None) -> None:
    """Print today's system prompt for the practice."""
    from datetime import date

    from knowledge.profile import ProfileError, default_profile_path, load_profile
    from knowledge.prompts import build_system_prompt

    try:
        p = load_profile(profile or default_profile_path())
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(build_system_prompt(p, today=date.today()))


@cli.command("bench")
@click.option("--repeat", default=5, show_default=True, help="Passes over the labelled sets.")
def bench(repeat: int) -> None:
    """Time rule loading, profile loading, assess() and practice answers (p50/p95)."""
    import time

    from knowledge.evaluation import default_labelled_path, load_labelled
    from knowledge.practice_info import TOPICS, answer_practice_question
    from knowledge.profile import default_profile_path, load_profile
    from knowledge.safety import SafetyRules

    _quiet_red_flag_log()

    def report(name: str, samples: list[float]) -> None:
        ordered = sorted(samples)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

        click.echo(f"{name:<28} n={len(ordered):<6} p50 {pct(0.5):8.3f} ms   "
                   f"p95 {pct(0.95):8.3f} ms   max {ordered[-1] * 1000:8.3f} ms")

    def timed(fn: object, n: int) -> list[float]:
        out = []
        for _ in range(n):
            started = time.perf_counter()
            fn()  # type: ignore[operator]
            out.append(time.perf_counter() - started)
        return out

    report("SafetyRules.load()", timed(SafetyRules.load, 10))
    report("load_profile(demo)", timed(lambda: load_profile(default_profile_path()), 10))
    rules = SafetyRules.load()
    profile = load_profile(default_profile_path())
    texts = [i.text for path in sorted(default_labelled_path().parent.glob("*.yaml"))
             for i in load_labelled(path)]
    samples = []
    for _ in range(repeat):
        for text in texts:
            started = time.perf_counter()
            rules.assess(text)
            samples.append(time.perf_counter() - started)
    report("assess(turn)", samples)
    samples = []
    for _ in range(repeat * 4):
        for topic in TOPICS:
            started = time.perf_counter()
            answer_practice_question(profile, topic)
            samples.append(time.perf_counter() - started)
    report("answer_practice_question", samples)
