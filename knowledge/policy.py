"""When the bot answers from knowledge, with which passages, and what it says when it does not know.

Pure Python: the web process decides from what the inference worker's retrieval returned. The
numbers here were measured (`make quality`, docs/quality.md); each is decided here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from knowledge.faithfulness import specifics
from knowledge.models import AnswerPolicy

# Confidence is calibrated per embedding model (calibration.py): 0.5 is the similarity cut that keeps 90%
# of answerable questions answered. 0.6 is measured (docs/knowledge.md) as the better balance for
# customers: on Acme's unseen customer questions 92% answered right either way (with the "not sure" band
# below), and 86% of the questions the help centre does not cover get "I don't know" or "not sure" and a
# person against 78% at 0.5 (only 50% a plain "I don't know"). Raise it for a bot that says "I don't know"
# more readily, lower it to answer more.
DEFAULT_THRESHOLD = 0.6
# A second passage joins the reply when it is nearly as confident as the first (the question is
# ambiguous between two entries) or when it best answers another part of a multi-part question.
SECOND_PASSAGE_MARGIN = 0.15
# Models up to this size quote by default: measured, the bundled 135M model rephrases facts wrongly
# (docs/quality.md), so its best answer is the passage itself.
QUOTE_BELOW_PARAMETERS = 1_000_000_000
# A customer message this short (in words) that refers back ("is it free?", "can he come up the chairlift
# with me too?") is read with the one before; one of at most FOLLOW_UP_BARE_WORDS words ("how long?")
# always is. Every message after the first would be too many: measured on 2,992 questions of Acme and the 32
# unseen help centres each asked after another one (docs/knowledge.md), joining every message cost 13 points of
# "I don't know" to the not-covered ones. Up to 12 words that refer back, against 6 before (replayed on
# the same help centres' 179 follow-ups and 3,208 topic switches): follow-ups answered right 66 -> 79 of
# 101, not-covered follow-ups offered a person 52 -> 47 of 78, topic switches 2 of 1,956 answered right
# fewer and 10 of 1,252 not-covered ones fewer told "I don't know".
FOLLOW_UP_WORDS = 12
FOLLOW_UP_BARE_WORDS = 3

# Just below the threshold the bot is not sure: rather than only "I don't know", it says it is not sure,
# shows the closest entry of the help centre and offers a person (or carries on, as the deployment says).
# Measured through the product's retrieval and decision code at the default threshold (docs/knowledge.md):
# Acme's held-out paraphrases answered right 75% -> 81%, refused 11% -> 5%; customer questions 89% -> 91%,
# refused 5% -> 2.5%; of the questions the help centre does not cover, the same 86% are told "I don't know"
# (78%) or "not sure" (8%) with a person offered; 32 help centres the retrieval model never saw: right
# 83% -> 86%, refused 8% -> 4%, not covered told so 58% either way.
UNSURE_BAND = 0.1
# Under an answer, up to RELATED_SHOWN other entries at least as confident as "not sure" are offered as
# questions the customer can ask with one tap ("Related: When will I get my refund?"). Replayed at the
# default threshold (docs/knowledge.md): on the 32 help centres the retrieval model never saw, for 3.1%
# of answerable questions the quoted entry was wrong and a related one held the answer (Acme's held-out
# paraphrases: 3 of 57); 65% of answers offer at least one ("I don't know" and "not sure" offer none).
RELATED_SHOWN = 2

DONT_KNOW_HANDOFF = "I don't know that one — shall I get someone from the team?"
DONT_KNOW_CONTINUE = "I don't know that one, sorry: it isn't covered by our help centre."
NOT_SURE_OPENING = "I'm not sure I know the answer to that. The closest entry in our help centre:"
NOT_SURE_HANDOFF = "Shall I get someone from the team?"


def default_policy(parameter_count: int) -> str:
    """Quote for small models, grounded generation for larger ones."""
    return AnswerPolicy.QUOTE if 0 < parameter_count < QUOTE_BELOW_PARAMETERS else AnswerPolicy.GROUNDED


@dataclass
class Candidate:
    """A passage the worker's retrieval returned, with how well it matched."""

    passage_id: int
    source_id: int
    title: str
    text: str
    question: str = ""
    url: str = ""
    similarity: float = 0.0  # cosine similarity of the embeddings (the best over the queries)
    confidence: float = 0.0  # the similarity through the embedding model's calibration, 0..1
    query: int = 0  # which query found it best (see retrieval_queries)
    # For the passage a follow-up's conversation points at: how confidently the message read with the one
    # before finds it, where that does not beat the earlier message alone. Only ever offered as "not sure".
    context_confidence: float = 0.0

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def citation(self) -> dict:
        """What a customer sees of a source (and the console, with the text)."""
        return {"passage_id": self.passage_id, "source_id": self.source_id, "title": self.title, "url": self.url,
                "confidence": round(self.confidence, 3)}


@dataclass
class Decision:
    answer: bool
    passages: list[Candidate] = field(default_factory=list)
    confidence: float = 0.0
    unstated: str = ""  # what the question asks for ("price") that the passages found do not state
    closest: Candidate | None = None  # not answering, but this entry is within UNSURE_BAND of the threshold
    related: list[Candidate] = field(default_factory=list)  # other entries offered under an answer

    @property
    def shown(self) -> list[Candidate]:
        """The entries the reply quotes: the answer's, or the closest one when not sure."""
        return self.passages if self.answer else [self.closest] if self.closest is not None else []


def decide(candidates: list[Candidate], threshold: float = DEFAULT_THRESHOLD, parts_from: int | None = None,
           margin: float = SECOND_PASSAGE_MARGIN, message: str = "") -> Decision:
    """Answer with the most confident passage if it clears the threshold; add a second one when it
    is nearly as confident, and for a question in several parts (queries from `parts_from` on) each
    other part's best passage that clears it too. Otherwise do not guess: the closest entry, if within
    UNSURE_BAND, or the entry a follow-up's conversation points at, is offered as "not sure". Nor when the
    customer's `message` asks for a price, a year, a time, a count, a phone number or a person and the
    passages state none, or names options ("UPS or FedEx?") and they name none."""
    ranked = sorted(candidates, key=lambda c: c.confidence, reverse=True)
    # A message in several parts may ask for a price in one part and be answered by another passage in
    # the other: the check is for single questions.
    wanted = asks_for(message) if parts_from is None else None
    options = choice_options(message) if parts_from is None and wanted is None else ()

    def answers(passage: Candidate) -> bool:
        text = f"{passage.title}\n{passage.text}"
        return states(wanted, text) if wanted is not None else names_one_of(options, text) if options else True

    if not ranked or ranked[0].confidence < threshold:
        closest = ranked[0] if ranked and ranked[0].confidence >= threshold - UNSURE_BAND else None
        pointed_at = max(ranked, key=lambda c: c.context_confidence, default=None)
        if pointed_at is not None and pointed_at.context_confidence >= max(
                threshold - UNSURE_BAND, closest.confidence if closest is not None else 0.0):
            closest = pointed_at  # "are duties included?" after "Do you ship to Canada?": that entry, not sure
        if closest is not None and not answers(closest):
            closest = None  # an entry that states no price, to someone asking what something costs
        return Decision(False, confidence=ranked[0].confidence if ranked else 0.0, closest=closest)
    first = ranked[0]
    second = next((c for c in ranked[1:] if c.confidence >= max(threshold, first.confidence - margin)), None)
    chosen = [first, second] if second is not None else [first]
    if parts_from is not None:
        answered = {c.query for c in chosen}
        for candidate in ranked[1:]:
            if candidate.query >= parts_from and candidate.query not in answered and candidate.confidence >= threshold:
                chosen.append(candidate)
                answered.add(candidate.query)
    if (wanted or options) and not any(answers(passage) for passage in chosen):
        return Decision(False, confidence=first.confidence, unstated=wanted or CHOICE)
    return Decision(True, chosen, first.confidence, related=related_entries(ranked, chosen, threshold))


def related_entries(ranked: list[Candidate], shown: list[Candidate], threshold: float) -> list[Candidate]:
    """The entries offered under an answer: the most confident others, down to the "not sure" band, one
    per question (an entry cut into several passages is offered once, and never one already shown)."""
    asked = {entry_question(passage) for passage in shown}
    related: list[Candidate] = []
    for candidate in ranked:
        if len(related) == RELATED_SHOWN or candidate.confidence < threshold - UNSURE_BAND:
            break
        question = entry_question(candidate)
        if question not in asked:
            related.append(candidate)
            asked.add(question)
    return related


def entry_question(passage: Candidate) -> str:
    """What a customer asks to get this entry: its Q&A question, else its heading."""
    return passage.question or heading_of(passage.title)


# --- what a question asks for -----------------------------------------------------------------------
# Similarity says a passage is about the question's topic, not that it answers it: "How much is the
# GlowTune motion sensor?" sits close to the entry on GlowTune bulbs, "When was Acme founded?" to the
# help centre's introduction. A question that asks for a price, a year, a time of day, a count or a
# phone number is answered only by a passage that states one. Measured through the product's retrieval
# on Acme and 62 other help centres (6,667 questions, docs/knowledge.md): at the default threshold 18 more
# questions the help centres do not cover got "I don't know" (32 at 0.5), and no answer was lost.
_ASKS_FOR = {
    # "how much is/does/for…" and "what does … cost", not "how much is left on my card", "how much is on my
    # gift card" (a balance) nor "how much bigger".
    "price": re.compile(r"\bhow much\b(?=\s*(?:\?|$|(?:is|are|does|do|did|will|would|r|for|to|it|they|extra|money|'s)"
                        r"\b))(?![^?]*\b(?:left|remaining|balance)\b)"
                        r"(?![^?]*\b(?:is|'s|have|got)\s+(?:still\s+)?(?:on|in)\s+(?:my|the|your|this|that|a|our)\b)|"
                        r"\bwhat(?:'s| is| are| does| do| would| will)\b"
                        r"[^?]*\b(?:cost|price|fee|charge)s?\b", re.I),
    # "When were you founded?", "How long has GreenBin been around?"
    "year": re.compile(r"\bwhat year\b|\bwhen (?:was|were|did)\b[^?]*\b(?:found|start|establish|open|creat|launch)|"
                       r"\bhow long (?:has|have) (?:[\w&'-]+ ){1,3}been (?:around|open|trading|in business|operating|"
                       r"running|building|hosting|making|selling|doing this)\b", re.I),
    "time": re.compile(r"\bwhat time\b(?!\s*(?:zone|frame|period|of (?:the )?year))|"
                       r"\bwhat (?:are|r) (?:your|the) (?:\w+ )?hours\b|\bopening hours\b", re.I),
    # "how many…?" and "in mm", not "can I change how many bags I get" (a how-to).
    "count": re.compile(r"(?<!change )(?<!choose )(?<!pick )(?<!set )(?<!adjust )(?<!update )\bhow many\b|"
                        r"\bin (?:mm|cm|inches|millimet\w*|centimet\w*|kg|lbs?|grams)\b", re.I),
    "phone number": re.compile(r"\bwhat(?:'s| is| are) (?:your|the) (?:\w+ ){0,3}phone numbers?\b|"
                               r"\bwhat number (?:do|can|should) i call\b|\bnumber (?:to|for|i can) call\b", re.I),
    # "Who is the CEO?", "who owns Acme?": the help centre's introduction is about the company, not its people.
    "person": re.compile(r"\bwho(?:'s| is| are| was| were|s)\s+(?:the |your |ur |our )?(?:\w+ ){0,2}"
                         r"(?:ceo|owners?|founders?|managers?|president|director|boss)\b|"
                         r"\bwho (?:owns|founded|started|runs|set up|created|established)\b", re.I),
}
# The specifics (knowledge/faithfulness.py) that state each, and the words that do ("free", "unlimited").
_STATED_BY = {"price": {"money", "percent"}, "year": set(), "time": {"time"},
              "count": {"number", "money", "time", "percent"}, "phone number": {"phone"}, "person": set()}
_STATED_IN_WORDS = {
    "price": re.compile(r"\bfree\b|\bno (?:charge|cost|fee)s?\b|\bincluded\b|\bat no\b", re.I),
    "year": re.compile(r"\b(?:1[89]\d\d|20\d\d)\b"),  # any number is a count, only these are years
    "count": re.compile(r"\bas many\b|\b(?:same|next)[- ]day\b|\bunlimited\b|\bno limit\b", re.I),
    # A passage that says who holds such a role ("founded by Ana Ruiz", "our owners, the Lees"), not one that
    # only uses the word ("the original owner", "your account manager").
    "person": re.compile(r"\b(?:founded|owned|run|managed|led|started) by\b|\bceo\b|\bchief executive\b|"
                         r"\b(?:our|its|the company's) (?:\w+ )?(?:founders?|owners?|managers?|president|director)\b",
                         re.I),
}


def asks_for(message: str) -> str | None:
    """The kind of specific a question asks for, if it asks for one ("price", "year", "time", "count",
    "phone number", "person")."""
    return next((kind for kind, pattern in _ASKS_FOR.items() if pattern.search(message)), None)


def states(kind: str, text: str) -> bool:
    """Whether `text` states a specific of that kind."""
    in_words = _STATED_IN_WORDS.get(kind)
    if in_words is not None and in_words.search(text):
        return True
    return bool({found.kind for found in specifics(text)} & _STATED_BY[kind])


# "Which courier delivers my order, UPS or FedEx?", "Is the pool chlorine or salt water?": a question that
# names its options is answered only by a passage that names one of them. Measured through the product's
# retrieval on Acme and the 32 help centres GPT Store Retrieval never saw (docs/knowledge.md).
CHOICE = "choice"
_CHOICE = re.compile(r"\b([a-z][\w'+&-]*),? or (?:just |only |maybe |perhaps )?([a-z][\w'+&-]*)[^,;?!.]{0,12}[?!.\s]*$",
                     re.I)
_NOT_AN_OPTION = {
    "not", "what", "no", "nah", "something", "anything", "so", "more", "less", "two", "three", "later", "else", "never",
    "otherwise", "both", "neither", "either", "whatever", "it", "this", "that", "them", "me", "you", "us", "now",
    "today", "here", "there", "one", "when", "where", "how", "why", "who", "which", "if", "i", "we", "they", "he",
    "she",
}


def choice_options(message: str) -> tuple[str, ...]:
    """The options a question ends by naming ("…, UPS or FedEx?"), if it does."""
    found = _CHOICE.search(message.strip())
    if found is None or {option.lower() for option in found.groups()} & _NOT_AN_OPTION:
        return ()
    return found.groups()


# A currency asked for by its code ("CAD or USD?") is named by a passage that spells it out ("in US dollars").
_CURRENCY_NAMES = {"usd": r"u\.?s\.? dollars?", "cad": r"canadian dollars?", "eur": r"euros?",
                   "gbp": r"pounds? sterling", "aud": r"australian dollars?", "nzd": r"new zealand dollars?"}


def names_one_of(options: tuple[str, ...], text: str) -> bool:
    return any(re.search(rf"\b(?:{re.escape(option)}|{_CURRENCY_NAMES.get(option.lower(), '(?!)')})", text, re.I)
               for option in options)


def heading_of(title: str) -> str:
    """The entry a passage is from: the last part of its title ("How much does shipping cost?")."""
    return title.split(" › ")[-1].strip()


def quote_text(passages: list[Candidate]) -> str:
    """The quote answer: each passage as the business wrote it, under its entry's heading (the FAQ's
    question says what the passage answers: "What is Acme Steps?" names what the text calls "our
    loyalty program")."""
    blocks = []
    for passage in passages:
        heading = (passage.question or heading_of(passage.title)).strip()
        blocks.append(f"{heading}\n{passage.text.strip()}" if heading else passage.text.strip())
    return "\n\n".join(blocks)


def dont_know_text(handoff: bool) -> str:
    return DONT_KNOW_HANDOFF if handoff else DONT_KNOW_CONTINUE


def not_sure_text(closest: Candidate, handoff: bool) -> str:
    """Not sure: says so, quotes the closest entry as the business wrote it, and offers a person."""
    return "\n\n".join([NOT_SURE_OPENING, quote_text([closest]), *([NOT_SURE_HANDOFF] if handoff else [])])


# --- the customer's words -----------------------------------------------------------------------

_FOLLOW_UP_START = re.compile(r"^\s*(?:and|or|also|what about|how about|but|plus|same for|and what|so)\b", re.I)
# "there" refers back ("can I park there?") unless it only says something exists ("is there a fee?").
_REFERS_BACK = re.compile(r"^\s*(?:ok(?:ay)?|what if)\b|\b(?:it|its|it's|that|those|this|these|them|they|their|"
                          r"one|ones|he|she|his|her|him|too|also|then|instead|still|afterwards|else)\b|"
                          r"(?<!\bis )(?<!\bare )(?<!\bwas )(?<!\bwere )(?<!\bbe )\bthere\b"
                          r"(?!\s+(?:is|are|was|were|be|'s)\b)", re.I)
# Small talk is a message made only of these words (a goodbye, a thank-you, a greeting, "are you a bot?",
# "I have a question", an "ok"), in any order and with any punctuation: "ok thanks bye", "thank you for your
# help!", "hi there team". Measured on 7,261 benchmark questions and chat turns: the 15 taken for small talk
# all are ("hello? anyone there", "ok cool thanks, that's all"); and "thanks for nothing" is not. One
# word outside them ("thanks but where is my order") makes it a question. The reply is that of the
# strongest kind it holds: a goodbye ends the chat, so it wins over the thanks that often comes with it.
_SMALL_TALK_KINDS = (
    # A bare "no" answers the bot's own "Anything else?" or "Shall I get someone?": the chat is done.
    ("goodbye", re.compile(r"\b(?:bye+|goodbye|cya|see (?:you|ya)|later|good ?night|that'?s (?:all|it)|that is all|"
                           r"nothing else|no thanks?(?: you)?|have a (?:nice|good|great) (?:day|evening|weekend))\b|"
                           r"^(?:no|nope|nah)(?: (?:that's it|thats it|all good|i'm good|im good))?$"),
     "Thanks for chatting — have a great day!"),
    ("thanks", re.compile(r"\b(?:thanks?|thx|ty|cheers|appreciated?)\b"),
     "You're welcome! Is there anything else I can help with?"),
    ("greeting", re.compile(r"\b(?:hi+|hello+|hey+|hiya|yo|greetings|good (?:morning|afternoon|evening))\b"),
     "Hello! What can I help you with?"),
    # "are you a bot?", "am I talking to a real person?": who is answering, and that a person is there too.
    ("identity", re.compile(r"\b(?:bot|robot|chatbot|ai|automated)\b|\b(?:are you|r u|is this) real\b"),
     "I'm the virtual assistant: I answer from our help centre, and I can get someone from the team whenever you "
     "ask."),
    # "I have a question", "can you help me?", "is anyone there?": the customer has not asked yet.
    ("opener", re.compile(r"\b(?:help|questions?|query|ask|anyone|anybody|there|here|support|need)\b"),
     "I'm here to help — what would you like to know?"),
    ("acknowledgement", re.compile(r"\b(?:ok(?:ay)?|k|got it|great|perfect|cool|alright|sounds good|understood|nice|"
                                   r"awesome|brilliant|fine|super)\b"),
     "Glad to help! Anything else?"),
)
_SMALL_TALK_WORDS = {
    "bye", "goodbye", "cya", "see", "you", "ya", "later", "good", "night", "goodnight", "that's", "thats", "all",
    "it", "that", "is", "nothing", "else", "have", "a", "nice", "great", "day", "evening", "weekend", "no",
    "thanks", "thank", "thx", "ty", "cheers", "appreciate", "appreciated", "so", "much", "very", "lot", "mate",
    "again", "for", "the", "your", "help", "many", "hi", "hello", "hey", "hiya", "yo", "greetings", "morning",
    "afternoon", "there", "team", "guys", "everyone", "ok", "okay", "k", "got", "perfect", "cool", "alright",
    "sounds", "understood", "awesome", "brilliant", "fine", "super", "really", "oh", "ah", "well", "nope", "nah",
    "i'm", "im",
    # openers and who is answering
    "i", "question", "questions", "quick", "query", "can", "could", "me", "please", "pls", "plz",
    "need", "some", "ask", "something", "anyone", "anybody", "here", "are", "r", "u", "support", "urgent", "asap",
    "bot", "robot", "chatbot", "ai", "an", "automated", "real", "am", "talking", "to", "this", "with",
}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def small_talk(text: str) -> str | None:
    """The reply to a greeting, a thank-you or a goodbye: answering it from the knowledge base
    (or saying "I don't know") would be absurd."""
    spoken = text.lower().replace("’", "'")
    words = [_unstretched(word) for word in _WORD.findall(spoken)]
    if not words or len(words) > 12 or any(word not in _SMALL_TALK_WORDS for word in words):
        return None
    said = " ".join(words)
    if re.search(r"\bfor nothing\b", said):  # "thanks for nothing" is not thanks
        return None
    return next((reply for _, pattern, reply in _SMALL_TALK_KINDS if pattern.search(said)), None)


def _unstretched(word: str) -> str:
    """A word typed with its last letter held down ("hiii", "byeee", "thanksss"), spelt once."""
    once = re.sub(r"(.)\1+$", r"\1", word)
    return once if once in _SMALL_TALK_WORDS else word


# Where one message holds several questions: sentence ends, and "and/also" before a new question.
_PARTS = re.compile(r"(?<=[.!?])\s+|[;]\s*|\s+(?:and|also|plus|but)\s+"
                    r"(?=(?:what|how|when|where|can|could|do|does|is|are|will|would|which|who|why|should|may|i|if)\b)",
                    re.I)
MIN_PART_WORDS = 3


@dataclass
class Lookup:
    """What to look up for a customer turn: the whole message first, then (for a short follow-up) the
    message with the one before it and the one before alone, then each part of a message that asks
    several things.

    The one before alone only checks the joined query: a passage the joined query finds counts only
    where it matches better than the earlier message alone does, so that a new question ("What year
    were you founded?") is not answered with the passage of the question before it."""

    queries: list[str]
    parts_from: int | None = None  # the index of the first part, if the message has several
    follow_up: int | None = None  # the index of the joined query; the earlier message alone is the next one
    # The message says it continues the one before ("and express?", "what about…"): the entry the joined
    # query finds best may be offered as "not sure" even where the message alone finds another.
    continues: bool = False

    def payload(self) -> dict:
        """The queries as the worker's retrieval takes them."""
        return {"queries": self.queries, "follow_up": self.follow_up, "continues": self.continues}


def _follows_up(message: str) -> bool:
    """Whether a message only makes sense with the one before it."""
    words = len(message.split())
    return bool(_FOLLOW_UP_START.match(message) or words <= FOLLOW_UP_BARE_WORDS
                or (words <= FOLLOW_UP_WORDS and _REFERS_BACK.search(message)))


def retrieval_queries(turns: list[dict]) -> Lookup:
    customer = [turn["content"].strip() for turn in turns if turn["role"] == "user" and turn["content"].strip()]
    if not customer:
        return Lookup([])
    last = customer[-1]
    queries = [last]
    follow_up = None
    if len(customer) > 1 and _follows_up(last):
        follow_up = len(queries)
        queries += [f"{customer[-2]} {last}", customer[-2]]
    continues = follow_up is not None and bool(_FOLLOW_UP_START.match(last))
    parts = [part.strip() for part in _PARTS.split(last) if part and len(part.split()) >= MIN_PART_WORDS]
    if len(parts) < 2:
        return Lookup(queries, follow_up=follow_up, continues=continues)
    return Lookup(queries + parts[:4], parts_from=len(queries), follow_up=follow_up, continues=continues)
