"""A small lexicon-based sentiment and profanity scorer for Dutch and English customer messages.

Deliberately simple and explainable (agents see *why* a conversation was escalated):

- every known sentiment word has a valence in [-1, 1]; the message score is the sum of the
  valences squashed into [-1, 1] (``s / (|s| + 1)``), so one mildly negative word stays mild
  and several strong ones approach -1;
- an intensifier ("heel", "zeer", "echt", "erg", "very", "so", "really", ...) multiplies the
  next sentiment word by 1.5; a negation ("niet", "geen", "nooit", "not", "no", "never",
  "n't") within the next three words flips and dampens it ("niet slecht" is mildly positive);
- "!!" and words in ALL CAPS amplify a negative message;
- profanity (Dutch and English) is matched per word, also obfuscated ("f*ck", "sh1t"),
  elongated ("kuttttt") and as the first part of a Dutch compound ("kutbedrijf",
  "klotezooi"), never as a substring of an innocent word ("Scunthorpe", "klotsen",
  "shiitake"); "kanker"/"tering" about the disease or in "de tering naar de nering zetten"
  are not swearing.

A plain complaint about the facts ("mijn rekening is te hoog") scores 0: the heuristic
measures *how* something is said, the intent classifier *what* is asked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

# Strong negative: a message scoring at or below this is escalated. Calibrated on the
# hand-written examples in tests/actions/test_sentiment.py: one negative word, even with an
# intensifier such as "echt belachelijk", stays above it; "echt waardeloos" plus "!!", two
# strong words, or anger with caps/exclamation marks go below it.
STRONG_NEGATIVE = -0.5

NEGATIVE: Dict[str, float] = {
    # Dutch
    "waardeloos": -0.8, "waardeloze": -0.8, "schandalig": -0.8, "schande": -0.8,
    "belachelijk": -0.6, "belachelijke": -0.6, "bespottelijk": -0.6, "slecht": -0.5,
    "slechte": -0.5, "slechter": -0.6, "slechtste": -0.8, "onacceptabel": -0.7,
    "onaanvaardbaar": -0.7, "boos": -0.6, "kwaad": -0.6, "woedend": -0.9, "razend": -0.8,
    "pissig": -0.6, "witheet": -0.9, "gefrustreerd": -0.5, "teleurgesteld": -0.5,
    "rampzalig": -0.8, "klantonvriendelijk": -0.6, "incompetent": -0.8, "prutsers": -0.8,
    "amateurs": -0.6, "amateuristisch": -0.7, "oplichting": -0.9, "oplichters": -0.9,
    "dieven": -0.8, "triest": -0.5, "absurd": -0.5, "idioot": -0.7, "idioten": -0.8,
    "onzin": -0.5, "flauwekul": -0.5, "hopeloos": -0.6, "verschrikkelijk": -0.7,
    "vreselijk": -0.7, "afschuwelijk": -0.8, "irritant": -0.5, "ergerlijk": -0.6,
    "walgelijk": -0.8, "puinhoop": -0.7, "bende": -0.4, "zooi": -0.5, "bagger": -0.7,
    "knudde": -0.7, "bedroevend": -0.7, "verdomme": -0.5, "verdorie": -0.3,
    "spuugzat": -0.9, "kotsbeu": -0.9, "beu": -0.6, "zat": -0.3, "klachten": -0.2,
    "gezeik": -0.7, "gezeur": -0.4, "bizar": -0.3,
    # English
    "terrible": -0.7, "awful": -0.7, "horrible": -0.7, "worst": -0.8, "useless": -0.8,
    "pathetic": -0.8, "ridiculous": -0.6, "disgrace": -0.8, "disgraceful": -0.8,
    "disgusting": -0.8, "unacceptable": -0.7, "outrageous": -0.7, "angry": -0.6,
    "furious": -0.9, "livid": -0.9, "annoyed": -0.4, "frustrated": -0.5,
    "frustrating": -0.5, "disappointed": -0.5, "disappointing": -0.5, "clowns": -0.7,
    "idiots": -0.8, "scam": -0.8, "scammers": -0.9, "thieves": -0.8, "ripoff": -0.8,
    "joke": -0.4, "nightmare": -0.7, "shocking": -0.5, "appalling": -0.8, "hate": -0.7,
    "bad": -0.5, "poor": -0.4, "crap": -0.6, "crappy": -0.6, "rubbish": -0.6,
    "garbage": -0.6, "wtf": -0.4, "ffs": -0.5, "damn": -0.4,
    "sucks": -0.6, "stupid": -0.6, "insane": -0.3, "crazy": -0.3, "incompetence": -0.8,
    "sick": -0.3, "tired": -0.2, "fed": -0.2, "mess": -0.4, "shambles": -0.7,
}

POSITIVE: Dict[str, float] = {
    # Dutch
    "goed": 0.5, "goede": 0.5, "top": 0.6, "prima": 0.5, "fijn": 0.5, "blij": 0.6,
    "tevreden": 0.6, "bedankt": 0.4, "dank": 0.4, "dankjewel": 0.4, "dankje": 0.4,
    "geweldig": 0.8, "uitstekend": 0.8, "perfect": 0.7, "mooi": 0.5, "vriendelijk": 0.5,
    "duidelijk": 0.4, "handig": 0.4, "leuk": 0.5, "fantastisch": 0.8, "netjes": 0.4,
    # English
    "good": 0.5, "great": 0.7, "excellent": 0.8, "thanks": 0.4, "thank": 0.4,
    "helpful": 0.6, "happy": 0.6, "love": 0.6, "nice": 0.5, "fine": 0.3, "fair": 0.3,
    "friendly": 0.5, "awesome": 0.8, "clear": 0.3, "brilliant": 0.8, "pleased": 0.6,
}

# Multi-word expressions, matched on the normalised text before the word scores.
PHRASES: Dict[str, float] = {
    "ben het zat": -0.9, "ben het spuugzat": -1.0, "ben het beu": -0.9, "heb er genoeg van": -0.8,
    "om te huilen": -0.8, "van de zotte": -0.7, "te gek voor woorden": -0.8,
    "nooit meer": -0.4, "slaat nergens op": -0.6, "is een grap": -0.6,
    "fed up": -0.9, "sick of": -0.8, "sick and tired": -1.0, "had enough": -0.8,
    "rip off": -0.8, "never again": -0.6, "what a joke": -0.7,
}

INTENSIFIERS = {
    "heel", "zeer", "echt", "erg", "super", "ontzettend", "enorm", "vet", "zo", "zwaar",
    "mega", "totaal", "hartstikke", "ongelooflijk", "extreem",
    "very", "so", "really", "extremely", "totally", "absolutely", "utterly", "truly",
    "incredibly", "seriously",
}
NEGATIONS = {"niet", "geen", "nooit", "not", "no", "never", "nothing", "niets", "niks", "nt"}
NEGATION_SCOPE = 3
INTENSIFIER_FACTOR = 1.5
NEGATION_FACTOR = -0.5

# Whole-word profanity (also matched obfuscated and elongated).
PROFANITY = {
    # Dutch
    "kut", "klote", "kloten", "godverdomme", "godver", "godsamme", "tering", "kanker",
    "tyfus", "pleuris", "kolere", "klootzak", "klootzakken", "lul", "hoer", "hoeren",
    "kk", "kkr", "mongool", "mongolen", "debiel", "debielen", "eikel", "eikels",
    "shit", "fuck",
    # English
    "fucking", "fucked", "fucker", "fuckers", "fuckin", "fck", "fcking", "fuk", "fukking",
    "fking", "fvck", "motherfucker", "motherfucking", "bullshit", "shitty", "shite",
    "asshole", "assholes", "arsehole", "arseholes", "bastard", "bastards", "bitch",
    "bitches", "cunt", "cunts", "dick", "dickhead", "dickheads", "piss", "pissed",
    "wanker", "wankers", "twat", "twats", "prick", "pricks", "goddamn", "goddamnit",
    "stfu",
}
# Stems that also swear as the first part of a compound ("kutbedrijf", "fuckingapp").
PROFANE_PREFIXES = ("kut", "klote", "kanker", "tering", "tyfus", "pleuris", "kolere",
                    "godver", "fuck", "shit", "klootzak")
# Innocent words that start with a profane stem.
NOT_PROFANE = {
    "shiitake", "shitake", "kankeronderzoek", "kankerpatient", "kankerpatiënt",
    "kankerpatiënten", "kankerbehandeling", "kankerfonds", "kankercel", "kankercellen",
    "kankerbestrijding", "kankerverwekkend", "kankerverwekkende", "kankerzorg",
    "kankerdiagnose", "kutje",
}
# "kanker"/"tering"/"tyfus" as the disease ("mijn vader heeft kanker"), not a curse.
DISEASES = {"kanker", "tering", "tyfus", "pleuris"}
DISEASE_BEFORE = {"heeft", "had", "heb", "hebben", "hadden", "met", "aan", "tegen", "door",
                  "vanwege", "gekregen", "kreeg", "kregen", "ziekte", "van", "behandeling"}
DISEASE_AFTER = {"gehad", "gekregen", "heeft", "had", "overleden", "patient", "behandeling",
                 "geconstateerd", "vastgesteld"}

PROFANITY_VALENCE = -0.7
EMOJI: Dict[str, float] = {
    "😡": -0.5, "🤬": -0.9, "😠": -0.5, "😤": -0.5, "🙄": -0.3, "😢": -0.3, "😭": -0.4,
    "👎": -0.5, "😊": 0.4, "🙂": 0.3, "😀": 0.4, "👍": 0.4, "🙏": 0.3, "❤️": 0.5, "❤": 0.5,
}
# Acronyms that are not shouting.
ACRONYMS = {"IBAN", "KWH", "BTW", "CV", "SEPA", "PDF", "APP", "OK", "OKE", "NL", "EN", "FAQ",
            "ASAP", "AUB", "PLS", "WTF", "FFS", "KK", "KKR"}

LEET = str.maketrans({"1": "i", "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                      "$": "s", "!": "i", "€": "e"})
_TOKEN = re.compile(r"[\w*@$!€']+|[^\w\s]", re.UNICODE)
_SQUEEZE = re.compile(r"(.)\1+")


@dataclass(frozen=True)
class Sentiment:
    """The result of scoring one message."""

    score: float                                  # -1 (very negative) .. 1 (very positive)
    profanity: bool = False
    matched: Tuple[str, ...] = ()                 # the sentiment words/phrases found
    profane_words: Tuple[str, ...] = field(default=())

    @property
    def strong_negative(self) -> bool:
        return self.score <= STRONG_NEGATIVE


def squeeze(word: str) -> str:
    """Collapse every run of a repeated letter: "kuttttt" -> "kut", "bullshit" -> "bulshit"."""
    return _SQUEEZE.sub(r"\1", word)


_ELONGATED = re.compile(r"(.)\1\1")
_PROFANITY_SQUEEZED = {squeeze(w): w for w in PROFANITY if len(squeeze(w)) >= 3}
_NOT_PROFANE_SQUEEZED = {squeeze(w) for w in NOT_PROFANE}


def _strip(token: str) -> str:
    """Strip quotes and trailing "!" but keep inner symbols ("sh!t") and stars ("f***")."""
    return token.strip("'").rstrip("!")


def _starred(word: str) -> Optional[str]:
    """ "f*ck", "f**k", "sh*t", "k*t": each run of n stars stands for 1..n+1 letters."""
    letters = sum(c.isalpha() for c in word)
    if not word[0].isalpha() or (letters < 2 and len(word) < 4):
        return None
    parts = re.split(r"(\*+)", word.translate(LEET))
    pattern = re.compile("".join(
        "[a-z]{1,%d}" % (len(part) + 1) if part.startswith("*") else re.escape(part) for part in parts
    ))
    found = [w for w in PROFANITY if pattern.fullmatch(w)]
    # the word with as many letters as the token has characters ("f**k" -> "fuck", not "fck")
    found.sort(key=lambda w: (abs(len(w) - len(word)), w))
    return found[0] if found else None


def profane_word(token: str) -> Optional[str]:
    """The lexicon word ``token`` spells if it is profanity, else ``None``.

    Matches whole words only: exact, leetspeak ("sh1t"), starred ("f*ck"), elongated
    ("kuttttt"), or a Dutch compound starting with a profane stem ("kutbedrijf").
    """
    word = _strip(token.lower())
    if not word or not any(c.isalpha() for c in word):
        return None
    if "*" in word:
        return _starred(word)
    plain = word.translate(LEET)
    if word in NOT_PROFANE or plain in NOT_PROFANE:
        return None
    if plain in PROFANITY:
        return plain
    if _ELONGATED.search(plain):  # "kuttttt", "fuuuuck": compare with every run collapsed
        flat = squeeze(plain)
        if flat in _NOT_PROFANE_SQUEEZED:
            return None
        if flat in _PROFANITY_SQUEEZED:
            return _PROFANITY_SQUEEZED[flat]
        plain = flat
    if plain.isalpha():
        for prefix in PROFANE_PREFIXES:
            if plain.startswith(prefix) and len(plain) >= len(prefix) + 3:
                return prefix
    return None


def tokenize(text: str) -> List[str]:
    text = re.sub(r"n't\b", " not", text)
    text = re.sub(r"n’t\b", " not", text)
    return _TOKEN.findall(text)


def _is_disease(words: Sequence[str], index: int) -> bool:
    before = words[index - 1] if index > 0 else ""
    before2 = words[index - 2] if index > 1 else ""
    after = words[index + 1] if index + 1 < len(words) else ""
    if "krijg" in (before, before2) or "krijgt" in (before, before2):
        return False  # "krijg de tering": a curse
    if words[index] == "tering" and "nering" in words:
        return True   # "de tering naar de nering zetten"
    return before in DISEASE_BEFORE or after in DISEASE_AFTER


def score_message(text: str) -> Sentiment:
    """Score a customer message; see the module docstring."""
    if not text:
        return Sentiment(0.0)
    raw_tokens = tokenize(text)
    lower_text = " ".join(t.lower() for t in raw_tokens)

    total = 0.0
    matched: List[str] = []
    for phrase, valence in PHRASES.items():
        if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", lower_text):
            total += valence
            matched.append(phrase)
    phrase_words = {w for p in matched for w in p.split()}

    words = [_strip(t.lower()) for t in raw_tokens]
    profane: List[str] = []
    pending_intensity = 1.0
    negation_left = 0
    for index, (token, word) in enumerate(zip(raw_tokens, words)):
        if token in EMOJI:
            total += EMOJI[token]
            matched.append(token)
            continue
        if not word or not re.search(r"\w", word.replace("*", "a")):
            negation_left, pending_intensity = 0, 1.0  # punctuation ends a clause
            continue
        swear = profane_word(token)
        if swear in DISEASES and _is_disease(words, index):
            swear = None
        if word in NEGATIONS:
            negation_left = NEGATION_SCOPE
            continue
        valence: Optional[float] = None
        if swear:
            profane.append(word)
            valence = PROFANITY_VALENCE
        elif word in phrase_words:
            valence = None
        elif word in NEGATIVE:
            valence = NEGATIVE[word]
        elif word in POSITIVE and not (word == "super" and index + 1 < len(words)
                                       and (words[index + 1] in NEGATIVE or words[index + 1] in POSITIVE)):
            valence = POSITIVE[word]
        if valence is None:
            if word in INTENSIFIERS:
                pending_intensity = INTENSIFIER_FACTOR
            else:
                pending_intensity = 1.0  # an intensifier only lifts the word right after it
                if negation_left:
                    negation_left -= 1
            continue
        valence *= pending_intensity
        pending_intensity = 1.0
        if negation_left and not swear:
            valence *= NEGATION_FACTOR
        negation_left = 0
        total += valence
        matched.append(word)

    if total < 0:
        exclamations = len(re.findall(r"!", text))
        if exclamations >= 2:
            total *= 1 + 0.15 * min(exclamations, 4)
        shouted = [t for t in raw_tokens if len(t) >= 3 and t.isalpha() and t.isupper()
                   and t.upper() not in ACRONYMS]
        if len(shouted) >= 2:
            total *= 1.4
    score = total / (abs(total) + 1.0)
    return Sentiment(
        score=round(max(-1.0, min(1.0, score)), 3),
        profanity=bool(profane),
        matched=tuple(matched),
        profane_words=tuple(profane),
    )
