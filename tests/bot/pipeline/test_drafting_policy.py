"""The drafting policy: configuration validation and the auto-send / draft decision."""
from __future__ import annotations

import pytest

from bot.config import DEFAULTS
from bot.config import SettingError
from bot.pipeline.drafting_policy import Decision, DraftingPolicy
from bot.store.models import Mode


def policy(**overrides) -> DraftingPolicy:
    config = dict(DEFAULTS["drafting"])
    config.update(overrides)
    return DraftingPolicy.from_config(config)


def decide(p: DraftingPolicy, intent="tariffs", confidence=0.9, mode=Mode.bot, channel="telegram", flags=()):
    return p.decide(intent=intent, confidence=confidence, mode=mode, channel=channel, customer_flags=flags)


# ---------------------------------------------------------------- configuration


def test_defaults() -> None:
    p = DraftingPolicy.from_config({})
    assert p.threshold == 0.8
    assert p.intent_thresholds == {} and p.channel_thresholds == {}
    assert p.always_review == frozenset()
    q = policy()
    assert q.always_review == {"complaint", "cancel_contract", "payment_arrangement"}
    assert q.review_customer_flags == {"vip", "sensitive"}


@pytest.mark.parametrize("value", [1.5, -0.1, "high", None, [0.5]])
def test_bad_global_threshold(value) -> None:
    with pytest.raises(SettingError, match="threshold"):
        DraftingPolicy.from_config({"threshold": value})


def test_threshold_given_as_numeric_string_is_accepted() -> None:
    assert DraftingPolicy.from_config({"threshold": "0.7"}).threshold == 0.7


@pytest.mark.parametrize("section", ["intent_thresholds", "channel_thresholds"])
def test_bad_per_name_threshold(section: str) -> None:
    with pytest.raises(SettingError, match=rf"{section}\.tariffs"):
        DraftingPolicy.from_config({section: {"tariffs": 2}})
    with pytest.raises(SettingError, match=section):
        DraftingPolicy.from_config({section: [0.5]})


def test_unknown_key() -> None:
    with pytest.raises(SettingError, match="treshold"):
        DraftingPolicy.from_config({"treshold": 0.8})


@pytest.mark.parametrize("key", ["always_review", "review_customer_flags"])
@pytest.mark.parametrize("value", ["complaint", 5, 3.5])
def test_non_list_names(key: str, value) -> None:
    with pytest.raises(SettingError, match=key):
        DraftingPolicy.from_config({key: value})


def test_drafting_policy_error_is_a_value_error() -> None:
    assert issubclass(SettingError, ValueError)


# ---------------------------------------------------------------- decide()


def test_human_mode_is_silent() -> None:
    d = decide(policy(), confidence=1.0, mode=Mode.human)
    assert d == Decision(auto_send=False, reason=d.reason, silent=True)
    assert "human" in d.reason


def test_assist_mode_drafts() -> None:
    d = decide(policy(), confidence=1.0, mode=Mode.assist)
    assert not d.auto_send and not d.silent
    assert "assist" in d.reason


@pytest.mark.parametrize("intent", ["nlu_fallback", None, ""])
def test_not_understood_drafts(intent) -> None:
    d = decide(policy(), intent=intent, confidence=0.99)
    assert not d.auto_send and not d.silent
    assert "did not understand" in d.reason


@pytest.mark.parametrize("intent", ["complaint", "cancel_contract", "payment_arrangement"])
def test_always_reviewed_intents_draft_even_when_certain(intent: str) -> None:
    d = decide(policy(), intent=intent, confidence=0.99)
    assert not d.auto_send and not d.silent
    assert intent in d.reason and "always reviewed" in d.reason


def test_always_review_is_configurable() -> None:
    p = policy(always_review=["tariffs"])
    assert not decide(p, intent="tariffs", confidence=0.99).auto_send
    assert decide(p, intent="complaint", confidence=0.99).auto_send


@pytest.mark.parametrize("flags", [["vip"], ["sensitive", "other"], ("vip", "sensitive")])
def test_flagged_customer_drafts(flags) -> None:
    d = decide(policy(), confidence=0.99, flags=flags)
    assert not d.auto_send
    for flag in set(flags) & {"vip", "sensitive"}:
        assert flag in d.reason


def test_unrelated_customer_flag_does_not_draft() -> None:
    assert decide(policy(), confidence=0.99, flags=["newsletter"]).auto_send


def test_below_and_above_global_threshold() -> None:
    p = policy(threshold=0.8)
    low = decide(p, confidence=0.5)
    assert not low.auto_send and not low.silent
    assert "0.50" in low.reason and "0.80" in low.reason
    high = decide(p, confidence=0.95)
    assert high.auto_send
    assert "0.95" in high.reason and "0.80" in high.reason


def test_exactly_at_threshold_auto_sends() -> None:
    assert decide(policy(threshold=0.8), confidence=0.8).auto_send
    assert decide(policy(intent_thresholds={"tariffs": 0.9}), confidence=0.9).auto_send
    assert decide(policy(channel_thresholds={"telegram": 0.95}), confidence=0.95).auto_send


def test_intent_threshold_lower_than_global_replaces_it() -> None:
    p = policy(threshold=0.8, intent_thresholds={"greet": 0.5})
    d = decide(p, intent="greet", confidence=0.6)
    assert d.auto_send
    assert "0.50" in d.reason
    assert not decide(p, intent="tariffs", confidence=0.6).auto_send  # others keep 0.8
    assert p.threshold_for("greet", "telegram") == 0.5


def test_intent_threshold_higher_than_global_replaces_it() -> None:
    p = policy(threshold=0.8, intent_thresholds={"tariffs": 0.9})
    d = decide(p, intent="tariffs", confidence=0.85)
    assert not d.auto_send
    assert "0.85" in d.reason and "0.90" in d.reason
    assert decide(p, intent="greet", confidence=0.85).auto_send


def test_channel_threshold_raises_the_bar() -> None:
    p = policy(threshold=0.8, channel_thresholds={"webhook": 0.95})
    d = decide(p, confidence=0.9, channel="webhook")
    assert not d.auto_send
    assert "0.90" in d.reason and "0.95" in d.reason
    assert decide(p, confidence=0.9, channel="telegram").auto_send


def test_channel_threshold_never_lowers_the_bar() -> None:
    p = policy(threshold=0.8, intent_thresholds={"tariffs": 0.9}, channel_thresholds={"webhook": 0.3})
    assert p.threshold_for(None, "webhook") == 0.8
    assert p.threshold_for("tariffs", "webhook") == 0.9
    assert not decide(p, intent="greet", confidence=0.5, channel="webhook").auto_send
    d = decide(p, intent="tariffs", confidence=0.85, channel="webhook")
    assert not d.auto_send and "0.90" in d.reason


def test_channel_threshold_above_a_lower_intent_threshold() -> None:
    p = policy(threshold=0.8, intent_thresholds={"greet": 0.5}, channel_thresholds={"webhook": 0.7})
    assert p.threshold_for("greet", "webhook") == 0.7
    assert not decide(p, intent="greet", confidence=0.6, channel="webhook").auto_send
    assert decide(p, intent="greet", confidence=0.6, channel="telegram").auto_send


def test_rule_order_mode_before_intent_and_flags() -> None:
    # human beats everything, assist beats fallback, fallback beats always_review
    assert decide(policy(), intent="complaint", mode=Mode.human, flags=["vip"]).silent
    assert "assist" in decide(policy(), intent="nlu_fallback", mode=Mode.assist).reason
    p = policy(always_review=["nlu_fallback"])
    assert "did not understand" in decide(p, intent="nlu_fallback").reason
    assert "always reviewed" in decide(policy(), intent="complaint", flags=["vip"]).reason


def test_public_replies_are_reviewed_unless_the_channel_has_a_public_threshold() -> None:
    policy = DraftingPolicy.from_config({"threshold": 0.8, "public_thresholds": {"instagram": 0.95}})
    reviewed = policy.decide(intent="tariffs", confidence=0.99, mode=Mode.bot, channel="facebook", public=True)
    assert not reviewed.auto_send and "public" in reviewed.reason
    assert policy.decide(intent="tariffs", confidence=0.99, mode=Mode.bot, channel="facebook").auto_send
    assert policy.decide(intent="tariffs", confidence=0.96, mode=Mode.bot, channel="instagram", public=True).auto_send
    assert not policy.decide(intent="tariffs", confidence=0.9, mode=Mode.bot, channel="instagram",
                             public=True).auto_send


def test_a_public_threshold_never_lowers_the_private_one() -> None:
    policy = DraftingPolicy.from_config({"threshold": 0.8, "intent_thresholds": {"cancel": 0.97},
                                         "public_thresholds": {"instagram": 0.85}})
    assert policy.threshold_for("cancel", "instagram", public=True) == 0.97
    assert policy.threshold_for("tariffs", "instagram", public=True) == 0.85
