"""The lexicon-based sentiment/profanity heuristic (actions/sentiment.py), calibrated here.

ESCALATE_* must come out as profanity or strong negative; CALM_* must not (normal complaints
about the facts, neutral questions, praise, and words that merely contain a swear word).
"""
from __future__ import annotations

import pytest

from actions.sentiment import STRONG_NEGATIVE, Sentiment, profane_word, score_message

ESCALATE_NL = [
    "jullie zijn echt waardeloos, ik ben het zat",
    "wat een kutbedrijf zijn jullie",
    "klote app doet het weer niet",
    "godverdomme, alweer een fout op mijn rekening",
    "krijg de tering met jullie service",
    "kankerbedrijf, ik ga weg",
    "dit is echt SCHANDALIG, NIEMAND belt terug!!!",
    "ik ben woedend, dit is oplichting",
    "wat een puinhoop, echt belachelijk!!",
    "jullie zijn echt prutsers",
    "kuttttt",
    "k*t bedrijf",
    "ik heb er genoeg van, waardeloze klantenservice",
    "dit is om te huilen, zo slecht geregeld",
    "zeer teleurgesteld en boos over hoe jullie met klanten omgaan",
    "ik ben het spuugzat",
    "echt waardeloos!!",
    "wat een klotezooi",
]
ESCALATE_EN = [
    "this is fucking ridiculous",
    "f*ck this company",
    "what a sh1t service",
    "you are the worst energy company ever, absolutely useless",
    "I'm fed up with your useless service!!!",
    "THIS IS A DISGRACE, WORST COMPANY EVER",
    "bullshit, you charged me twice",
    "I am furious, this is a scam",
    "sick and tired of waiting for you clowns",
    "shiiiiit, the app crashed again",
    "what a joke, totally incompetent",
    "your customer service is pathetic and I hate it",
    "you bunch of assholes",
    "really terrible service, unacceptable!!",
    "f**k off with your reminders",
    "this is awful, truly appalling",
    "so angry right now, nobody answers!!!",
]
CALM_NL = [
    "mijn rekening is te hoog",
    "mn jaarafrekening is echt belachelijk hoog",
    "1400 euro nabetalen?? jullie zijn gek geworden",
    "ik wil mijn termijnbedrag verlagen",
    "wanneer krijg ik mijn geld terug?",
    "mijn vader heeft kanker en kan de rekening niet betalen",
    "we moeten de tering naar de nering zetten, kan ik een betalingsregeling krijgen",
    "het water in de cv begint te klotsen",
    "niet slecht, dank je",
    "top, dankjewel voor de snelle hulp!",
    "rekening klopt niet!!!",
    "ik ben het niet eens met de hoogte van mijn eindafrekening",
    "jammer dat niemand terugbelt, kan iemand mij helpen?",
    "ik kom niet in de app, mijn wachtwoord werkt niet",
    "super bedankt, heel duidelijk",
    "geen stroom sinds vanochtend, wat moet ik doen",
    "is dat een kankerverwekkende stof in de meterkast?",
]
CALM_EN = [
    "my bill is way too high",
    "wtf is this bill 😡",
    "not bad at all, thanks",
    "I am moving to Scunthorpe next month",
    "I'd like to lower my monthly payment",
    "can I talk to a real person please",
    "the gas usage on my invoice looks insane",
    "great, thank you so much!",
    "my IBAN changed, how do I update it",
    "this invoice can't be correct, pls recheck",
    "I bought shiitake mushrooms with the refund lol",
    "I am a bit disappointed the app is slow",
    "bill is wrong. check it asap",
    "the final settlement is much higher than I estimated",
    "no power since this morning",
    "Dickens wrote about cold houses, mine is one now that the heating is off",
    "thanks, that was helpful",
]


def escalates(result: Sentiment) -> bool:
    return result.profanity or result.strong_negative


@pytest.mark.parametrize("text", ESCALATE_NL + ESCALATE_EN)
def test_strong_negative_or_profane_messages_escalate(text: str) -> None:
    result = score_message(text)
    assert escalates(result), result


@pytest.mark.parametrize("text", CALM_NL + CALM_EN)
def test_normal_messages_do_not_escalate(text: str) -> None:
    result = score_message(text)
    assert not escalates(result), result


def test_enough_calibration_examples_per_language() -> None:
    for cases in (ESCALATE_NL, ESCALATE_EN, CALM_NL, CALM_EN):
        assert len(cases) >= 15
        assert len(set(cases)) == len(cases)


def test_the_result_is_a_small_dataclass_with_a_bounded_score() -> None:
    result = score_message("jullie zijn echt waardeloos, ik ben het zat")
    assert isinstance(result, Sentiment)
    assert -1.0 <= result.score <= STRONG_NEGATIVE
    assert result.profanity is False
    assert result.matched == ("ben het zat", "waardeloos")
    for text in ESCALATE_NL + ESCALATE_EN + CALM_NL + CALM_EN:
        assert -1.0 <= score_message(text).score <= 1.0


def test_a_neutral_complaint_scores_zero() -> None:
    assert score_message("mijn rekening is te hoog") == Sentiment(0.0)
    assert score_message("") == Sentiment(0.0)


@pytest.mark.parametrize("text", ["niet slecht", "not bad", "not bad at all"])
def test_negation_flips_a_negative_word(text: str) -> None:
    assert score_message(text).score > 0


@pytest.mark.parametrize("text", ["niet goed", "not good", "this isn't good"])
def test_negation_flips_a_positive_word(text: str) -> None:
    assert score_message(text).score < 0


def test_intensifiers_exclamations_and_caps_amplify() -> None:
    plain = score_message("slecht").score
    intensified = score_message("heel slecht").score
    exclaimed = score_message("heel slecht!!!").score
    shouted = score_message("HEEL SLECHT GEREGELD!!!").score
    assert plain > intensified > exclaimed > shouted
    assert score_message("so bad").score < score_message("bad").score
    # an intensifier lifts only the word right after it
    assert score_message("echt de rekening is slecht").score == score_message("slecht").score


def test_acronyms_are_not_shouting() -> None:
    assert score_message("mijn IBAN en BTW nummer kloppen niet, slecht").score == score_message("slecht").score


def test_praise_is_positive() -> None:
    assert score_message("top, heel fijn geholpen, bedankt!").score > 0.5
    assert score_message("great service, thanks a lot").score > 0.5


@pytest.mark.parametrize(
    "token, word",
    [
        ("kut", "kut"), ("KUT", "kut"), ("kuttttt", "kut"), ("klooooote", "klote"),
        ("f*ck", "fuck"), ("f**k", "fuck"), ("f***", "fuck"), ("sh1t", "shit"),
        ("sh!t", "shit"), ("5h1t", "shit"), ("fuuuuuck", "fuck"), ("shit!!!", "shit"),
        ("kutbedrijf", "kut"), ("klotezooi", "klote"), ("teringzooi", "tering"),
        ("fuckingapp", "fuck"), ("bullshit", "bullshit"), ("godverdomme", "godverdomme"),
        ("a$$hole", "asshole"), ("bulllllshit", "bullshit"),
    ],
)
def test_profanity_is_found_obfuscated_and_elongated(token: str, word: str) -> None:
    assert profane_word(token) == word


@pytest.mark.parametrize(
    "token",
    ["scunthorpe", "klotsen", "kluts", "shiitake", "dickens", "lull", "assessment",
     "cocktail", "kankeronderzoek", "kutje", "k", "ik", "12a", "1234", "f*", "*", "kunt", "ku"],
)
def test_innocent_words_are_not_profanity(token: str) -> None:
    assert profane_word(token) is None


@pytest.mark.parametrize(
    "text, profane",
    [
        ("mijn moeder heeft kanker, kan ik uitstel krijgen", False),
        ("hij is overleden aan kanker", False),
        ("ze heeft tyfus gehad", False),
        ("de tering naar de nering zetten", False),
        ("kanker op met je rekening", True),
        ("krijg de kanker", True),
        ("krijg de pleuris", True),
        ("tyfusbedrijf", True),
    ],
)
def test_disease_words_only_count_as_swearing(text: str, profane: bool) -> None:
    assert score_message(text).profanity is profane


def test_profanity_is_reported_with_the_words() -> None:
    result = score_message("wat een KUTBEDRIJF, f*ck jullie")
    assert result.profanity
    assert result.profane_words == ("kutbedrijf", "f*ck")
    assert result.score < 0
