"""Full-size synthetic KardiaBench: same schema and shape as the real data, invented text.

Why: the real dataset is gated, so speed/memory benchmarks and end-to-end tests need a stand-in with
the real data's proportions (22,080 dialogues, ~178k turns, 671 persona-disjoint profiles, over 90%
of dialogues with 8-10 turns, an imbalanced 32-label emotion distribution with within-dialogue
shifts, both span tag styles, realistic span lengths). Text is built from compositional templates;
it is grammatical but says nothing real, and nothing is copied from any dataset.

Deterministic for a seed on any machine (string-seeded `random.Random`, no set/hash ordering), and
streamed: `write_dataset` never holds more than one record in memory.
"""

from __future__ import annotations

import math
import random
import re
import time
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from kardiabench.emotions import EMOTIONS
from kardiabench.jsonl import encode_line
from kardiabench.spans import render_spans

REAL_DIALOGUES = 22_080
REAL_PERSONAS = 671
REAL_TEST_PERSONAS = 32
DEFAULT_TEST_FRACTION = 2_547 / 22_080

SYSTEM_TEMPLATE = (
    "You are a warm, perceptive emotional-support companion. Before replying, understand the user, "
    "reason about what they need, name the emotion they are feeling, then respond."
    "\n\nUser profile:\n{person}\n\nSituation: {situation}"
)

# Turns per dialogue: 91.5% have 8-10, the rest 2-7; mean ~8.05 (real: 178,080 / 22,080 = 8.07).
_TURN_COUNTS = (2, 3, 4, 5, 6, 7, 8, 9, 10)
_TURN_CUM = tuple(accumulate((0.010, 0.010, 0.012, 0.013, 0.015, 0.025, 0.700, 0.125, 0.090)))
XML_SHARE = 0.2  # share of dialogues written with <x>…</x> tags instead of <|x_begin|>…<|x_end|>
SHIFT_SHARE = 0.3  # share of dialogues (3+ turns) whose emotion changes part-way
# Target span lengths in words, as (mean, sd, low, high) of the drawn target (real averages:
# user 51, understanding 41, reasoning 53, response 27).
_LENGTHS = {
    "user": (45.0, 15.0, 12, 110),
    "understanding": (35.0, 10.0, 14, 80),
    "reasoning": (47.0, 13.0, 18, 100),
    "response": (22.0, 6.0, 8, 40),
}

# --------------------------------------------------------------------------- emotions

# label: (valence, "I feel ..." phrase, two first-person cue noun phrases, what they need (3rd person), weight)
_EMO: dict[str, tuple[str, str, tuple[str, str], str, float]] = {
    "afraid": (
        "neg",
        "scared",
        (
            "a sense of dread that follows me around the house",
            "a jumpy feeling whenever my phone rings",
        ),
        "a sense of safety and someone steady beside them",
        2.5,
    ),
    "angry": (
        "neg",
        "angry",
        (
            "a hot rush of frustration every time it comes up",
            "a clenched jaw that I only notice hours later",
        ),
        "room to vent and to feel that the anger is understood",
        1.2,
    ),
    "annoyed": (
        "neg",
        "irritated",
        ("a constant low buzz of irritation", "a short temper over tiny things"),
        "acknowledgement that the irritation is reasonable",
        1.5,
    ),
    "anticipating": (
        "pos",
        "full of anticipation",
        ("a restless countdown in my head", "a habit of checking the calendar every morning"),
        "a way to turn the waiting into something useful",
        2.0,
    ),
    "anxious": (
        "neg",
        "anxious",
        ("a knot in my stomach whenever the topic comes up", "a racing mind late at night"),
        "reassurance and a calmer plan",
        6.0,
    ),
    "apprehensive": (
        "neg",
        "uneasy",
        ("a hesitant feeling about the next step", "a quiet doubt that keeps me from committing"),
        "clarity about what might actually happen",
        3.0,
    ),
    "ashamed": (
        "neg",
        "ashamed",
        (
            "a heavy feeling whenever someone mentions it",
            "an urge to hide from the people who know",
        ),
        "compassion without judgement",
        1.5,
    ),
    "caring": (
        "pos",
        "protective",
        (
            "a constant wish to make things easier for them",
            "a habit of checking in more than usual",
        ),
        "recognition of their care and a reminder to look after themselves too",
        9.0,
    ),
    "confident": (
        "pos",
        "confident",
        ("a steady feeling that I can handle this", "a calm focus I have not had in a while"),
        "encouragement that builds on their momentum",
        4.0,
    ),
    "content": (
        "pos",
        "content",
        ("a quiet sense that things are finally settling", "an easy calm in the evenings"),
        "space to enjoy the calm without rushing ahead",
        3.5,
    ),
    "devastated": (
        "neg",
        "crushed",
        ("a hollow feeling that will not lift", "a tiredness that sleep does not fix"),
        "gentle presence more than solutions",
        1.2,
    ),
    "disappointed": (
        "neg",
        "let down",
        (
            "a flat feeling after all that hope",
            "a sinking feeling when I think about what could have been",
        ),
        "validation that the letdown is real and proportionate",
        3.0,
    ),
    "disgusted": (
        "neg",
        "disgusted",
        (
            "a sour feeling in my stomach when I remember it",
            "a strong urge to walk away from the whole thing",
        ),
        "confirmation that their values are sound",
        0.5,
    ),
    "embarrassed": (
        "neg",
        "embarrassed",
        ("a flush of heat every time I replay the moment", "a cringe that hits me at random times"),
        "perspective that others probably noticed less than they fear",
        1.5,
    ),
    "excited": (
        "pos",
        "excited",
        ("a buzz of energy that makes it hard to sit still", "a grin I cannot seem to hide"),
        "someone to share the excitement with",
        3.0,
    ),
    "faithful": (
        "pos",
        "committed",
        (
            "a steady loyalty that I do not want to give up",
            "a deep sense that it is worth sticking with",
        ),
        "respect for their commitment",
        1.5,
    ),
    "furious": (
        "neg",
        "furious",
        ("a rage that makes my hands shake", "a pounding heart whenever I think about it"),
        "a safe space to release the anger before thinking about next steps",
        0.6,
    ),
    "grateful": (
        "pos",
        "grateful",
        (
            "a warm feeling when I think about how people helped",
            "a lump in my throat when I remember their kindness",
        ),
        "a way to express their thanks",
        7.0,
    ),
    "guilty": (
        "neg",
        "guilty",
        ("a nagging sense that I let someone down", "a constant replay of what I should have said"),
        "help to separate responsibility from self-blame",
        1.5,
    ),
    "hopeful": (
        "pos",
        "hopeful",
        ("a small spark of optimism that keeps growing", "a lighter feeling in the mornings"),
        "support that keeps the hope realistic",
        8.0,
    ),
    "impressed": (
        "pos",
        "impressed",
        ("a real sense of admiration", "a surprised respect I did not expect"),
        "a chance to reflect on what inspired them",
        1.0,
    ),
    "jealous": (
        "neg",
        "jealous",
        ("a sting whenever I see their news", "a comparison that runs in my head all day"),
        "understanding without being labelled petty",
        0.8,
    ),
    "joyful": (
        "pos",
        "joyful",
        ("a happiness that bubbles up at odd moments", "an urge to tell everyone I meet"),
        "someone to celebrate with",
        3.0,
    ),
    "lonely": (
        "neg",
        "lonely",
        (
            "a quiet ache in the evenings",
            "a sense that nobody would notice if I disappeared for a week",
        ),
        "connection and a sense that someone is listening",
        4.5,
    ),
    "nostalgic": (
        "pos",
        "nostalgic",
        ("a wistful pull toward the old days", "a habit of scrolling through old photos"),
        "room to honour the memories",
        2.0,
    ),
    "prepared": (
        "pos",
        "prepared",
        ("a checklist that is finally complete", "a calm readiness I worked hard for"),
        "confirmation that their preparation counts",
        2.0,
    ),
    "proud": (
        "pos",
        "proud",
        ("a glow of satisfaction that lasts all day", "a sense that the hard work paid off"),
        "recognition of their effort",
        4.0,
    ),
    "sad": (
        "neg",
        "sad",
        ("a heaviness that sits on my chest", "a wave of tears at unexpected moments"),
        "comfort and patience",
        5.0,
    ),
    "sentimental": (
        "pos",
        "sentimental",
        (
            "a tenderness when I look at old keepsakes",
            "a soft feeling that makes me want to call old friends",
        ),
        "space to share what those memories mean",
        2.5,
    ),
    "surprised": (
        "pos",
        "surprised",
        (
            "a sense of disbelief that has not worn off",
            "a need to read the message again and again",
        ),
        "help to make sense of the unexpected news",
        1.0,
    ),
    "terrified": (
        "neg",
        "terrified",
        ("a panic that makes it hard to breathe", "a fear that wakes me up at night"),
        "grounding and a clear sense of safety",
        0.8,
    ),
    "trusting": (
        "pos",
        "trusting",
        ("a new willingness to rely on others", "a relief at being able to lean on someone"),
        "affirmation that their trust is well placed",
        3.5,
    ),
}
assert tuple(sorted(_EMO)) == EMOTIONS

# Where an emotion tends to go when it changes within a dialogue.
_SHIFT_FROM_NEG = {
    "hopeful": 4.0,
    "grateful": 3.0,
    "confident": 1.5,
    "caring": 1.0,
    "content": 1.0,
    "prepared": 1.0,
    "trusting": 1.0,
    "proud": 0.5,
}
_SHIFT_FROM_POS = {
    "grateful": 2.0,
    "hopeful": 2.0,
    "content": 1.0,
    "proud": 1.0,
    "joyful": 1.0,
    "confident": 1.0,
    "apprehensive": 1.0,
    "anxious": 1.0,
    "nostalgic": 0.5,
    "sentimental": 0.5,
}

# --------------------------------------------------------------------------- topics
# Phrases are written in the first person; `_persons` derives the 3rd-person ("they/their") and
# 2nd-person ("you/your") forms, so every template works for the user, the analysis and the reply.
# Events are past-tense verb phrases ("I {event}"), focus gerund phrases, plans base-verb phrases.


@dataclass(frozen=True, slots=True)
class _Topic:
    events_neg: tuple[str, ...]
    events_pos: tuple[str, ...]
    stakes: tuple[str, ...]  # pronoun-free noun phrases
    others: tuple[str, ...]  # a person, used as "my/their/your {other}"
    focus_neg: tuple[str, ...]
    focus_pos: tuple[str, ...]
    plans: tuple[str, ...]


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        (
            "got passed over for the promotion I had worked toward",
            "received harsh feedback from my manager in front of the whole team",
            "found out my team is being restructured",
        ),
        (
            "got offered the team lead role I applied for",
            "finished a big project that my team had struggled with for months",
        ),
        ("the job", "the team", "the next review"),
        ("manager", "closest colleague", "partner"),
        (
            "losing the progress I made this year",
            "being seen as someone who cannot cope",
            "starting over somewhere new",
        ),
        ("stepping into more responsibility", "showing what I can really do"),
        (
            "ask my manager for honest feedback",
            "write down what I actually want from the job",
            "talk to a mentor outside the company",
        ),
    ),
    _Topic(
        (
            "had a painful argument with my sister about our parents",
            "learned that my father needs an operation next month",
        ),
        (
            "reconnected with my brother after two years of silence",
            "hosted the whole family for dinner for the first time",
        ),
        ("the family", "the family dinner", "the operation"),
        ("sister", "mother", "cousin"),
        ("the family drifting apart", "saying something I cannot take back"),
        ("keeping the family close", "building new traditions together"),
        (
            "call my sister and talk calmly",
            "write my father a letter",
            "set up a regular family call",
        ),
    ),
    _Topic(
        (
            "found out my closest friends planned a trip without me",
            "drifted apart from my best friend after she moved away",
        ),
        ("made a new friend at my climbing class", "got a surprise visit from an old friend"),
        ("the friendship", "the group chat"),
        ("best friend", "roommate", "old school friend"),
        ("being left out again", "losing the people I count on"),
        ("letting new people in", "keeping this connection going"),
        (
            "message my friend directly",
            "invite someone for a coffee this week",
            "join a local club",
        ),
    ),
    _Topic(
        (
            "went through a breakup after three years together",
            "had a tense conversation with my partner about moving in",
        ),
        (
            "went on a lovely first date with someone I met through friends",
            "got engaged to my partner",
        ),
        ("the relationship", "the future"),
        ("partner", "ex", "closest friend"),
        ("being alone again", "making the same mistakes twice"),
        ("building something good together", "opening up to someone new"),
        (
            "tell my partner how I really feel",
            "take some time for myself",
            "talk it over with a close friend",
        ),
    ),
    _Topic(
        (
            "received a worrying test result from my doctor",
            "injured my knee and had to stop running",
        ),
        (
            "finished my first month of physical therapy",
            "got the all clear after a long health scare",
        ),
        ("the recovery", "the test result"),
        ("doctor", "physio", "partner"),
        ("not getting back to normal", "waiting for more news"),
        ("getting stronger week by week", "trusting my body again"),
        (
            "ask my doctor the questions I have been avoiding",
            "keep a simple recovery diary",
            "ask a friend to come to the next appointment",
        ),
    ),
    _Topic(
        (
            "failed an exam I had studied for weeks",
            "got a rejection from the graduate programme I wanted",
        ),
        (
            "passed my final exam with a better grade than expected",
            "got accepted into a summer research project",
        ),
        ("the degree", "the exam result"),
        ("tutor", "study partner", "flatmate"),
        ("falling behind everyone else", "disappointing my parents"),
        ("proving to myself that I can do this", "the next step of the course"),
        (
            "meet my tutor to plan the resit",
            "make a realistic study schedule",
            "ask my study partner for help",
        ),
    ),
    _Topic(
        (
            "moved to a new city where I do not know anyone",
            "had to leave the flat I loved because the rent went up",
        ),
        (
            "finally moved into my own place",
            "settled into the new neighbourhood faster than I expected",
        ),
        ("the move", "the new flat"),
        ("neighbour", "landlord", "friend from home"),
        ("never feeling at home here", "the money running out"),
        ("making the place my own", "finding my favourite spots nearby"),
        ("say hello to my neighbours", "unpack one room at a time", "find a weekly class nearby"),
    ),
    _Topic(
        ("had to say goodbye to my old dog", "found out my cat needs expensive surgery"),
        ("adopted a rescue puppy from the shelter", "watched my shy cat finally start to trust me"),
        ("the cost of treatment", "the new puppy", "the daily routine"),
        ("vet", "partner", "neighbour"),
        ("coming home to an empty house", "having made the wrong decision"),
        ("giving the puppy a good life", "the new routine"),
        (
            "make a small memory box",
            "talk to the vet about the options",
            "ask a friend to help with walks",
        ),
    ),
    _Topic(
        (
            "lost a big freelance client without warning",
            "got an unexpected bill that wiped out my savings",
        ),
        ("paid off the last of my credit card debt", "got a pay rise after a long negotiation"),
        ("the budget", "the savings plan"),
        ("partner", "accountant", "brother"),
        ("not being able to pay rent", "having to ask for help"),
        ("finally having a cushion", "planning something nice for the future"),
        (
            "sit down and write a simple budget",
            "talk to my partner about money",
            "call the bank about a payment plan",
        ),
    ),
    _Topic(
        (
            "got harsh comments on a story I shared online",
            "froze on stage during the first gig of my band",
        ),
        (
            "sold my first painting at a local market",
            "finished the novel draft I started two years ago",
        ),
        ("the project", "the next performance"),
        ("bandmate", "writing group", "mentor"),
        ("never being good enough", "people laughing at my work"),
        ("sharing more of my work", "taking the next creative risk"),
        (
            "share the next piece with one trusted person",
            "book another small gig",
            "set a regular time to create",
        ),
    ),
    _Topic(
        (
            "started looking after my grandmother after her fall",
            "noticed my teenage son withdrawing from everyone",
        ),
        (
            "saw my grandmother smile at her new care home",
            "helped my son through his first week at a new school",
        ),
        ("the care plan", "the routine at home"),
        ("grandmother", "son", "sister"),
        ("missing something important", "burning out before anyone notices"),
        ("making the days a little easier for everyone", "seeing the family settle"),
        (
            "ask my sister to share the visits",
            "talk to the school counsellor",
            "take one evening a week for myself",
        ),
    ),
    _Topic(
        (
            "stepped down from the volunteer group after a conflict",
            "felt out of place at my new church",
        ),
        (
            "organised a neighbourhood clean-up that went really well",
            "got thanked in public for my volunteer work",
        ),
        ("the group", "the community"),
        ("group leader", "neighbour", "friend from church"),
        ("being judged by people I respect", "letting the group down"),
        ("doing more for the community", "the next event"),
        (
            "have an honest talk with the group leader",
            "help at one small event",
            "write down why this matters to me",
        ),
    ),
)

_TIMES = (
    "last week",
    "a few days ago",
    "yesterday",
    "this morning",
    "over the weekend",
    "a couple of weeks ago",
    "last month",
    "on Friday",
)

# --------------------------------------------------------------------------- personas

_MBTI_WEIGHTS = {
    "INFP": 14,
    "INFJ": 13,
    "INTP": 12,
    "INTJ": 11,
    "ENFP": 8,
    "ENTP": 6,
    "ISTP": 4,
    "ISFP": 4,
    "ENFJ": 4,
    "ENTJ": 4,
    "ISTJ": 4,
    "ISFJ": 4,
    "ESTP": 3,
    "ESFP": 3,
    "ESTJ": 3,
    "ESFJ": 3,
}
_TRAITS = {
    "I": ("process things quietly on my own", "need time alone before I talk about feelings"),
    "E": ("talk things through with the people around me", "think out loud with friends"),
}
_APPROACH = {
    "F": "names the feelings gently",
    "T": "offers a clear and practical angle",
    "J": "points toward a concrete next step",
    "P": "keeps several options open",
}
_JOBS = (
    "a nurse",
    "a software developer",
    "a primary school teacher",
    "a barista",
    "an accountant",
    "a graphic designer",
    "a warehouse supervisor",
    "a university student",
    "a librarian",
    "an electrician",
    "a social worker",
    "a retail manager",
    "a freelance translator",
    "a lab technician",
    "a chef",
    "a bus driver",
    "a marketing assistant",
    "a physiotherapist",
    "a stay-at-home parent",
    "a civil engineer",
    "a call centre agent",
    "a veterinary nurse",
    "a session musician",
    "a data analyst",
    "a carpenter",
    "a pharmacist",
    "a local journalist",
    "a delivery driver",
    "a PhD student",
    "a hotel receptionist",
)
_PLACES = (
    "in a small coastal town",
    "in a busy city centre",
    "in a quiet suburb",
    "in a farming village",
    "near the university",
    "in an old mill town",
    "on the edge of a big city",
    "in a mountain town",
)
_LIVES = (
    "I live with my partner and two cats",
    "I share a flat with two friends from college",
    "I live alone and like it that way most of the time",
    "I am a single parent of a seven-year-old",
    "I recently moved back in with my parents",
    "I have been married for ten years and we have a teenage daughter",
    "I live with my grandmother and help look after her",
    "I share a house with my brother and his dog",
)
_HOBBIES = (
    "bake bread on Sunday mornings",
    "play chess online",
    "walk my dog by the river",
    "go climbing at the local wall",
    "paint small watercolours",
    "play guitar badly but happily",
    "run early in the morning",
    "read fantasy novels",
    "tend a tiny balcony garden",
    "play co-op video games with friends",
    "knit scarves for the whole family",
    "cook recipes from my grandmother",
    "swim at the public pool",
    "write short stories",
    "take long bike rides",
    "do jigsaw puzzles",
    "sing in a community choir",
    "photograph old buildings",
    "practise yoga at home",
    "watch old films with my flatmate",
)
_SIGNATURES = (
    "Small steps still count.",
    "Be gentle with people, including yourself.",
    "Coffee first, decisions later.",
    "Still figuring it out, one day at a time.",
    "Quiet does not mean empty.",
    "Kindness is a habit worth building.",
    "Making lists so I can ignore them later.",
    "Every storm runs out of rain eventually.",
    "Curious about almost everything.",
    "Done is better than perfect.",
    "Listening more than I talk.",
    "Looking for the funny side, even on bad days.",
    "Tea, books and long walks.",
    "Trying to grow a little every year.",
    "Soft heart, stubborn head.",
    "Brave enough to ask for help.",
    "Home is the people, not the place.",
    "Learning to rest without guilt.",
)
_FORUMS = (
    "Introverts Lounge",
    "Career Talk",
    "Working Parents",
    "Pet Owners",
    "Fitness Corner",
    "Book Club",
    "Student Life",
    "Relationship Advice",
    "Creative Writing",
    "Money Matters",
    "New in Town",
    "Health and Recovery",
    "Music Makers",
    "Home Cooking",
)
_POSTS = (
    "how do you recharge after a long week?",
    "tips for staying motivated in winter",
    "does anyone else struggle to ask for help?",
    "what helped you settle into a new city?",
    "favourite cheap weekend activities",
    "how do you handle criticism at work?",
    "small habits that made a big difference",
    "advice on talking to family about money",
    "book recommendations for a rainy weekend",
    "how to keep friendships going as an adult",
    "does anyone else overthink every message they send?",
    "what does your morning routine look like?",
    "first time adopting a rescue animal",
    "how do you celebrate small wins?",
    "learning an instrument as an adult",
    "how do you say no without feeling guilty?",
)

# --------------------------------------------------------------------------- sentence templates
# Suffix 1 = first person (user), 3 = third person (understanding, reasoning), 2 = second person
# (response). Slots: event, focus, plan, cue, hobby, trait (all with a person suffix), stake, other,
# feel, prev_feel, label, need, priority, approach, mbti, time.

_USER_OPEN = (
    "I {event1} {time}, and I keep going over it in my head.",
    "So, I {event1} {time}.",
    "Something happened {time}: I {event1}.",
    "I need to talk about something. I {event1} {time}.",
    "I am not sure where to start, but I {event1} {time}.",
)
_USER_FOLLOW = (
    "That actually helps a little.",
    "I had not thought about it that way before.",
    "Maybe you are right about that.",
    "I hear you, but it still feels big.",
    "Thank you, that is kind of you to say.",
    "Yes, that is pretty much it.",
    "I tried to look at it like that last night.",
    "Honestly, I needed to hear that.",
)
_USER_SHIFT = (
    "Talking it through has changed something, and now I mostly feel {feel}.",
    "Funny enough, the feeling has shifted, and right now I feel {feel} more than anything.",
)
_USER_BODY = {
    "neg": (
        "I feel {feel} whenever I think about {focus1}.",
        "What I notice most is {cue1}.",
        "There is {cue1}, and it is hard to ignore.",
        "My {other} says I should stop worrying so much, but that is easier said than done.",
        "Part of me wants to {plan1}, but I am not sure it would change anything.",
        "Normally I {hobby1} when I need to clear my head, but even that is not helping this week.",
        "I keep telling myself it should not matter this much.",
        "It is hard to explain to people who have not been through it.",
        "Most days I manage to get on with things, but the evenings are harder.",
        "I do not want to make a big deal out of it, yet it is all I can think about.",
        "As an {mbti}, I usually {trait1}, but this time it is not working.",
        "Everything around {stake} feels uncertain right now.",
        "I have not told many people about it yet.",
    ),
    "pos": (
        "I feel {feel} whenever I think about {focus1}.",
        "What I notice most is {cue1}.",
        "There is {cue1}, and I want to hold on to it.",
        "My {other} noticed the change in me before I did.",
        "Part of me wants to {plan1} while I still have this energy.",
        "I even found time to {hobby1} this week, which felt great.",
        "It has been a long time since I felt like this.",
        "Everything around {stake} finally feels lighter.",
        "As an {mbti}, I usually {trait1}, and this time that is exactly what I did.",
        "I do not want to jinx it, but things really seem to be moving.",
        "A few months ago I would not have believed this could happen.",
        "I told my {other} and we talked about it for an hour.",
    ),
}
_USER_CLOSE = {
    "neg": (
        "Is it silly to feel this way?",
        "How do I stop it from taking over my whole week?",
        "Do you think I am overreacting?",
        "I just needed to say it to someone.",
    ),
    "pos": (
        "Is it strange to feel this good about it?",
        "I wanted to share it with someone.",
        "Does that make sense?",
        "What do you think I should do with all this energy?",
    ),
}

_UND_OPEN = (
    "The user {event3} {time} and is still processing what it means.",
    "The user shares that they {event3} {time}.",
    "The user explains that they {event3} {time}, and it is clearly on their mind.",
)
_UND_FOLLOW = (
    "The user responds to the earlier reflection and adds more detail.",
    "The user is opening up further about {stake}.",
    "In this turn the user builds on what they said before.",
    "The user takes the previous reply on board and goes deeper.",
)
_UND_SHIFT = (
    "Their tone has moved away from feeling {prev_feel} and now sounds {feel}.",
    "Something has shifted since the start of the conversation: they now sound {feel} rather than {prev_feel}.",
)
_UND_BODY = (
    "They say they feel {feel} when they think about {focus3}.",
    "The feeling shows up as {cue3}.",
    "Their {other} appears in the story, which suggests the relationship matters here.",
    "As an {mbti}, they usually {trait3}, which shapes how they are handling this.",
    "They mention that they usually {hobby3} to unwind.",
    "Underneath the details, {stake} seems to carry a lot of weight for them.",
    "The emotion most present right now reads as {label}.",
    "They seem to be weighing whether to {plan3}.",
    "Their words suggest they want to be heard before they are advised.",
    "They describe {cue3}, which shows how much this is affecting them.",
)

_REA_OPEN = (
    "Given that they feel {feel}, the first priority is {priority}.",
    "They need {need} before any advice will land.",
    "The user is feeling {label}, so the reply should start with {priority}.",
)
_REA_BODY = (
    "Jumping straight to solutions could feel dismissive, so the reply should first reflect what they shared.",
    "Since they are an {mbti}, a reply that {approach} will probably feel natural to them.",
    "Naming the feeling as {label} helps them feel accurately understood.",
    "A gentle question about {stake} can help them find their own next step.",
    "Their idea to {plan3} is worth supporting without pushing them too hard.",
    "The reply should stay short, warm and specific rather than general.",
    "Mentioning that they usually {hobby3} could remind them of their own resources.",
    "It is important not to exaggerate the situation or make promises about how it will turn out.",
    "Exploring what matters to them should come before fixing anything.",
    "Acknowledging {cue3} shows that their experience has been heard.",
    "The best response validates the emotion and then leaves room for them to continue.",
    "Reflecting their own words back will show that the details were taken in.",
)
_PRIORITY = {"neg": "comfort and steadiness", "pos": "sharing and reinforcing the good feeling"}

_RESP_OPEN = {
    "neg": (
        "That sounds really hard, and it makes sense that you feel {feel}.",
        "I am sorry you are dealing with this.",
        "It is understandable to feel {feel} after everything with {stake}.",
        "Thank you for telling me about this.",
    ),
    "pos": (
        "That is wonderful to hear, and you have every reason to feel {feel}.",
        "I am really glad you shared this with me.",
        "It sounds like you feel {feel}, and that is lovely to hear.",
        "What a meaningful moment for you.",
    ),
}
_RESP_BODY = {
    "neg": (
        "Wanting to {plan2} sounds like a thoughtful next step.",
        "You do not have to figure it all out today.",
        "It is clear how much {stake} matters to you.",
        "Your worries about {focus2} make a lot of sense.",
        "Maybe you could {hobby2} this week, even just for a little while.",
        "You have handled more than you are giving yourself credit for.",
    ),
    "pos": (
        "Wanting to {plan2} sounds like a great way to build on this.",
        "It is clear how much {stake} matters to you.",
        "Your hopes about {focus2} sound well earned.",
        "Maybe you could {hobby2} this week to celebrate a little.",
        "You put real effort into getting here.",
    ),
}
_RESP_CLOSE = (
    "What feels most important to you right now?",
    "Would it help to talk through the next step together?",
    "How are you taking care of yourself this week?",
    "What would a good outcome look like for you?",
)

# --------------------------------------------------------------------------- pronoun forms

_PRONOUNS = re.compile(r"\b(I|my|me|myself|our)\b")
_THIRD = {"I": "they", "my": "their", "me": "them", "myself": "themselves", "our": "their"}
_SECOND = {"I": "you", "my": "your", "me": "you", "myself": "yourself", "our": "your"}


def _persons(phrase: str) -> tuple[str, str, str]:
    """(first, third, second) person forms of a first-person phrase."""
    return (
        phrase,
        _PRONOUNS.sub(lambda m: _THIRD[m.group(1)], phrase),
        _PRONOUNS.sub(lambda m: _SECOND[m.group(1)], phrase),
    )


def _forms(phrases: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
    return tuple(_persons(p) for p in phrases)


@dataclass(frozen=True, slots=True)
class _TopicForms:
    events: dict[str, tuple[tuple[str, str, str], ...]]
    focus: dict[str, tuple[tuple[str, str, str], ...]]
    plans: tuple[tuple[str, str, str], ...]
    stakes: tuple[str, ...]
    others: tuple[str, ...]


_TOPIC_FORMS = tuple(
    _TopicForms(
        {"neg": _forms(t.events_neg), "pos": _forms(t.events_pos)},
        {"neg": _forms(t.focus_neg), "pos": _forms(t.focus_pos)},
        _forms(t.plans),
        t.stakes,
        t.others,
    )
    for t in _TOPICS
)
_CUES = {label: _forms(e[2]) for label, e in _EMO.items()}
_HOBBY_FORMS = {h: _persons(h) for h in _HOBBIES}
_TRAIT_FORMS = {k: _forms(v) for k, v in _TRAITS.items()}
_LABELS = tuple(_EMO)
_LABEL_CUM = tuple(accumulate(e[4] for e in _EMO.values()))


def _cum(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(weights), tuple(accumulate(weights.values()))


_SHIFTS = {"neg": _cum(_SHIFT_FROM_NEG), "pos": _cum(_SHIFT_FROM_POS)}
_MBTI = _cum(_MBTI_WEIGHTS)


def _pick_weighted(rand, keys: Sequence, cum: Sequence[float]):
    return keys[bisect(cum, rand() * cum[-1])]


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True, slots=True)
class _Persona:
    username: str
    mbti: str
    person: str
    hobbies: tuple[str, str]


def _make_personas(n: int, seed: int) -> list[_Persona]:
    rng = random.Random(f"kardiabench-synth:{seed}:personas")
    rand, names, out = rng.random, set(), []
    while len(out) < n:
        name = f"user_{rng.getrandbits(24):06x}"
        if name in names:
            continue
        names.add(name)
        mbti = _pick_weighted(rand, *_MBTI)
        h1, h2 = rng.sample(_HOBBIES, 2)
        forums = rng.sample(_FORUMS, 2) + [f"{mbti} Forum"]
        posts = rng.sample(_POSTS, 3)
        verbs = ("Posted in", "Commented in", "Posted in")
        activities = "; ".join(
            f"{v} '{f}': {p}" for v, f, p in zip(verbs, forums, posts, strict=True)
        )
        about = (
            f"{rng.randint(18, 64)}, {rng.choice(_JOBS)} {rng.choice(_PLACES)}. {rng.choice(_LIVES)}. "
            f"I {h1} and {h2} in my spare time."
        )
        person = f"MBTI: {mbti}\nAbout: {about}\nSignature: {rng.choice(_SIGNATURES)}\nRecent Activities: {activities}"
        out.append(_Persona(name, mbti, person, (h1, h2)))
    return out


def _fill(
    rand, opener: str, body: Sequence[str], closer: str | None, ctx: dict, target: int
) -> str:
    """Opener, then body sentences in a random cyclic order (no repeats) up to `target` words, then closer."""
    parts = [opener.format_map(ctx)]
    words = parts[0].count(" ") + 1
    tail = closer.format_map(ctx) if closer else None
    if tail:
        words += tail.count(" ") + 1
    n = len(body)
    start, step = int(rand() * n), _STEPS[n][int(rand() * len(_STEPS[n]))]
    for i in range(n):
        if words >= target:
            break
        s = body[(start + i * step) % n].format_map(ctx)
        parts.append(s)
        words += s.count(" ") + 1
    if tail:
        parts.append(tail)
    return " ".join(parts)


# Strides coprime with a pool's size visit every sentence once, in a cheap pseudo-random order.
_STEPS = {n: tuple(s for s in range(1, max(n, 2)) if math.gcd(s, n) == 1) for n in range(1, 32)}


def _target(gauss, kind: str) -> int:
    mean, sd, lo, hi = _LENGTHS[kind]
    return min(hi, max(lo, int(gauss(mean, sd))))


def _dialogue(rng: random.Random, persona: _Persona) -> dict:
    rand, gauss = rng.random, rng.gauss

    def pick(seq):  # hot path: faster than rng.choice
        return seq[int(rand() * len(seq))]

    n_turns = _TURN_COUNTS[bisect(_TURN_CUM, rand() * _TURN_CUM[-1])]
    first = _pick_weighted(rand, _LABELS, _LABEL_CUM)
    labels = [first] * n_turns
    if n_turns >= 3 and rand() < SHIFT_SHARE:
        second = _pick_weighted(rand, *_SHIFTS[_EMO[first][0]])
        if second != first:
            at = 1 + int(rand() * (n_turns - 1))
            labels[at:] = [second] * (n_turns - at)

    topic = pick(_TOPIC_FORMS)
    valence = _EMO[first][0]
    event = pick(topic.events[valence])
    time_ = pick(_TIMES)
    mbti = persona.mbti
    focus0 = pick(topic.focus[valence])
    situation = pick(
        (
            "The user {e} {t} and feels {f} about {x}.",
            "After they {e} {t}, the user feels {f} and keeps thinking about {x}.",
            "The user {e} {t}; they feel {f} and are preoccupied with {x}.",
        )
    ).format(e=event[1], t=time_, f=_EMO[first][1], x=focus0[1])

    ctx: dict[str, str] = {
        "event1": event[0],
        "event3": event[1],
        "event2": event[2],
        "time": time_,
        "mbti": mbti,
        "approach": _APPROACH[mbti[2]] if rand() < 0.5 else _APPROACH[mbti[3]],
    }
    style = "xml" if rand() < XML_SHARE else "special"
    messages = [
        {
            "role": "system",
            "content": SYSTEM_TEMPLATE.format(person=persona.person, situation=situation),
        }
    ]
    prev = first
    for k, label in enumerate(labels):
        val, feel, _, need, _ = _EMO[label]
        cue, focus, plan = pick(_CUES[label]), pick(topic.focus[val]), pick(topic.plans)
        hobby, trait = _HOBBY_FORMS[pick(persona.hobbies)], pick(_TRAIT_FORMS[mbti[0]])
        ctx.update(
            cue1=cue[0],
            cue3=cue[1],
            cue2=cue[2],
            focus1=focus[0],
            focus3=focus[1],
            focus2=focus[2],
            plan1=plan[0],
            plan3=plan[1],
            plan2=plan[2],
            hobby1=hobby[0],
            hobby3=hobby[1],
            hobby2=hobby[2],
            trait1=trait[0],
            trait3=trait[1],
            stake=pick(topic.stakes),
            other=pick(topic.others),
            feel=feel,
            prev_feel=_EMO[prev][1],
            label=label,
            need=need,
            priority=_PRIORITY[val],
        )
        shifted = label != prev
        if k == 0:
            user_open, und_open = pick(_USER_OPEN), pick(_UND_OPEN)
        elif shifted:
            user_open, und_open = pick(_USER_SHIFT), pick(_UND_SHIFT)
        else:
            user_open, und_open = pick(_USER_FOLLOW), pick(_UND_FOLLOW)
        user = _fill(
            rand,
            user_open,
            _USER_BODY[val],
            pick(_USER_CLOSE[val]) if rand() < 0.6 else None,
            ctx,
            _target(gauss, "user"),
        )
        spans = {
            "understanding": _fill(
                rand, und_open, _UND_BODY, None, ctx, _target(gauss, "understanding")
            ),
            "reasoning": _fill(
                rand, pick(_REA_OPEN), _REA_BODY, None, ctx, _target(gauss, "reasoning")
            ),
            "emotion": label,
            "response": _fill(
                rand,
                pick(_RESP_OPEN[val]),
                _RESP_BODY[val],
                pick(_RESP_CLOSE) if rand() < 0.7 else None,
                ctx,
                _target(gauss, "response"),
            ),
        }
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": render_spans(spans, style)})
        prev = label
    return {
        "person": persona.person,
        "mbti": mbti,
        "emotion": first,
        "situation": situation,
        "anon_username": persona.username,
        "messages": messages,
    }


def _plan(
    n_dialogues: int, test_fraction: float, n_personas: int | None
) -> tuple[int, int, int, int]:
    """(test dialogues, train dialogues, test personas, train personas) for a requested size."""
    if n_dialogues < 2:
        raise ValueError(f"n_dialogues must be at least 2 (one per split), got {n_dialogues}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n_test = min(n_dialogues - 1, max(1, round(n_dialogues * test_fraction)))
    n_train = n_dialogues - n_test
    if n_personas is None:
        n_personas = max(min(n_dialogues, 8), round(n_dialogues * REAL_PERSONAS / REAL_DIALOGUES))
    n_personas = max(2, min(n_personas, n_dialogues))
    # The real share of test personas (32 of 671), but at least 2: a test split of one persona has
    # one bootstrap cluster, so its confidence intervals are meaningless.
    p_test = max(2, round(n_personas * REAL_TEST_PERSONAS / REAL_PERSONAS))
    p_test = min(p_test, n_test, n_personas - 1)
    p_train = min(n_personas - p_test, n_train)
    return n_test, n_train, p_test, p_train


def _assignments(rng: random.Random, n: int, n_personas: int) -> list[int]:
    """Persona index for each of n dialogues: every persona gets one, the rest by skewed weights."""
    weights = [rng.lognormvariate(0.0, 0.5) for _ in range(n_personas)]
    out = list(range(n_personas)) + rng.choices(
        range(n_personas), weights=weights, k=n - n_personas
    )
    rng.shuffle(out)
    return out


def iter_records(
    n_dialogues: int,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    n_personas: int | None = None,
) -> Iterator[tuple[str, dict]]:
    """Yield (split, record) for the test split, then the train split; one record at a time."""
    n_test, n_train, p_test, p_train = _plan(n_dialogues, test_fraction, n_personas)
    personas = _make_personas(p_test + p_train, seed)
    groups = {"test": (personas[:p_test], n_test), "train": (personas[p_test:], n_train)}
    for split, (group, n) in groups.items():
        rng = random.Random(f"kardiabench-synth:{seed}:{split}")
        for idx in _assignments(rng, n, len(group)):
            yield split, _dialogue(rng, group[idx])


def synthesize(
    n_dialogues: int,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    n_personas: int | None = None,
) -> dict[str, list[dict]]:
    """{"train": [...], "test": [...]} of raw KardiaBench records (fine for small n; see write_dataset)."""
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for split, record in iter_records(n_dialogues, seed, test_fraction, n_personas):
        out[split].append(record)
    return out


@dataclass
class SynthSummary:
    out_dir: str
    seed: int
    files: dict[str, str] = field(default_factory=dict)
    dialogues: dict[str, int] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)
    personas: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [
            f"wrote synthetic KardiaBench to {self.out_dir} (seed {self.seed}, {self.seconds:.1f} s)"
        ]
        for split in self.files:
            lines.append(
                f"  {split}: {self.dialogues[split]} dialogues, {self.turns[split]} turns, "
                f"{self.personas[split]} personas -> {self.files[split]}"
            )
        return "\n".join(lines)


def write_dataset(
    out_dir: str | Path,
    n_dialogues: int = REAL_DIALOGUES,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    n_personas: int | None = None,
) -> SynthSummary:
    """Stream `train.jsonl` and `test.jsonl` into out_dir (created if needed; files overwritten)."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = SynthSummary(str(out), seed)
    handles = {}
    users: dict[str, set[str]] = {}
    try:
        for split, record in iter_records(n_dialogues, seed, test_fraction, n_personas):
            if split not in handles:
                path = out / f"{split}.jsonl"
                handles[split] = path.open("w", encoding="utf-8", newline="\n")
                summary.files[split] = str(path)
                summary.dialogues[split] = summary.turns[split] = 0
                users[split] = set()
            handles[split].write(encode_line(record))
            summary.dialogues[split] += 1
            summary.turns[split] += (len(record["messages"]) - 1) // 2
            users[split].add(record["anon_username"])
    finally:
        for fh in handles.values():
            fh.close()
    summary.personas = {s: len(u) for s, u in users.items()}
    summary.seconds = time.perf_counter() - started
    return summary
