"""Recall of the shipped lists: texts and search queries a pupil might type that a DSL
would want to see alert in their category, and everyday or classroom texts that must not.

The texts are written for this project from public descriptions of each risk (KCSIE,
Prevent guidance, NSPCC and UK Safer Internet Centre material) and kept non-graphic."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote_plus

import pytest

from rules.compile import Compiled
from rules.match import match_text
from rules.schema import Policy
from rules.urls import UrlMatcher

pytestmark = pytest.mark.unit

RECALL = [
    ("extremism", "how to make a bomb"),
    ("extremism", "how do i join isis"),
    ("extremism", "is the great replacement real"),
    ("extremism", "how to join national action"),
    ("extremism", "heil hitler 1488"),
    ("grooming", "send me a pic of you in your underwear"),
    ("grooming", "dont tell your parents we talk"),
    ("grooming", "how old are you? are you home alone"),
    ("grooming", "you are very mature for your age"),
    ("grooming", "i'll buy you a gift card if you send me a pic"),
    ("grooming", "lets meet up but come alone"),
    ("self_harm", "how to self harm"),
    ("self_harm", "i want to hurt myself"),
    ("self_harm", "how to hide my self-harm scars from my mum"),
    ("self_harm", "pro ana tips to lose weight fast"),
    ("self_harm", "how to make myself throw up after eating"),
    ("suicide", "suicide methods"),
    ("suicide", "how to commit suicide"),
    ("suicide", "i don't want to be alive anymore"),
    ("suicide", "everyone would be better off without me"),
    ("suicide", "how many pills does it take to overdose"),
    ("suicide", "i want to unalive myself"),
    ("bullying", "nobody likes you loser"),
    ("bullying", "everyone hates you, just leave the group"),
    ("bullying", "go die you freak"),
    ("bullying", "if you tell anyone i will beat you up"),
    ("bullying", "nobody wants you here loser"),
    ("bullying", "everyone is laughing at you, you're worthless"),
    ("discrimination", "go back to your country"),
    ("discrimination", "shut up you paki"),
    ("discrimination", "all muslims are terrorists"),
    ("discrimination", "you're such a retard"),
    ("discrimination", "go back to where you came from"),
    ("drugs", "buy cocaine online"),
    ("drugs", "where can i buy weed near me"),
    ("drugs", "how to smoke weed without your parents knowing"),
    ("drugs", "is it safe to take mdma"),
    ("drugs", "how to buy ketamine"),
    ("pornography", "watch porn for free"),
    ("pornography", "free sex videos"),
    ("pornography", "naked pics of girls"),
    ("pornography", "hentai"),
    ("pornography", "onlyfans leaks"),
    ("pornography", "xxx videos"),
    ("violence", "i'm going to stab you after school"),
    ("violence", "bring a knife to school tomorrow"),
    ("violence", "gonna batter him behind the shops tonight"),
    ("violence", "watch the beheading video"),
    ("violence", "how to make a pipe bomb"),
    ("violence", "i will shoot up the school"),
    ("gambling", "online casino free spins no deposit"),
    ("gambling", "bet365 login"),
    ("gambling", "best betting sites"),
    ("gambling", "how to bet money on football"),
    ("gambling", "skin betting sites for csgo"),
    ("illegal", "how to get a fake id"),
    ("illegal", "how to bypass the school filter"),
    ("illegal", "how to hack into someones account"),
    ("illegal", "how to access the dark web"),
    ("illegal", "how to ddos someone on xbox"),
]

# Everyday, classroom and slang uses of words the lists contain. Left out on purpose:
# texts a DSL could fairly want to see ("i will kill you at fortnite"), negations the
# lists cannot tell apart ("not all muslims are terrorists") and known ambiguities of
# existing phrases ("i want to die my hair pink").
INNOCENT = [
    "ill destroy u at fortnite",  # trash talk with the game named: still play
    "ur trash at fortnite lol",
    "the bomb squad in the history lesson",
    "I'm dying to see the film",
    "Scunthorpe",
    "my nan is a therapist",
    "we studied the assassination of JFK",
    "the cocaine trade in the 1980s drama",
    "self harm awareness week assembly",
    "how do you spell self harm",
    "how to make a bath bomb for mothers day",
    "we could make a bomb selling cakes at the school fair",
    "that new bike cost a bomb",
    "I could kill for a pizza right now",
    "dad is going to kill me when he sees my report",
    "how to get rid of the weeds in the garden",
    "we had a lesson about county lines",
    "Home Alone is my favourite Christmas film",
    "my mum says never meet up with strangers",
    "i cut my finger making dinner",
    "the Tudors beheaded Anne Boleyn",
    "we learnt about the Gunpowder Plot",
    "the first sex education lesson",
    "I bet you can't score at football",
    "the PSHE lesson about betting sites and young people",
    "how do I get the best time slots for the swimming lesson",
    "a documentary about the dark web",
    "the news said the website was hit by a ddos attack",
    "how to hack minecraft to get more diamonds",
    "my account got hacked",
    "how to access the school website from home",
    "Pakistan won the cricket",
    "we studied suicide prevention in PSHE",
    "the film had a lot of fake blood",
    "the dealer gave out the cards in the magic trick",
    "how do I get high scores in tetris",
    "my brother shot me with a nerf gun",
    "the knife and fork go on the table",
    "sending love to everyone xxx",
    "there was a fight in the playground but the teacher stopped it",
]


# Round 5 (issue 14): the families batch 7 missed, in wordings that are not the entries'
# examples (each missed by the lists before round 5).
ROUND5 = [
    ("grooming", "get telegram and look up my username so we can talk there"),
    ("grooming", "i bet u look so cute in ur pjs"),
    ("grooming", "we can meet at the park, just the two of us"),
    ("grooming", "your parents sound so strict, you deserve someone who gets you"),
    ("bullying", "they made an account using my name"),
    ("bullying", "u smell like a toilet"),
    ("bullying", "stop trying to sit with us"),
    ("drugs", "he's got a price list on his snap story"),
    ("drugs", "bring the rizla and we'll skin up"),
    ("drugs", "we did loads of balloons at the park last night"),
    ("violence", "we'll jump him when he walks home"),
    ("violence", "ur lucky we didnt finish him off"),
    ("violence", "catch them lacking"),
]


# Round 6 (issue 14): the families batch 8 missed, in wordings that are neither the entries'
# examples nor batch 8's texts (each missed by the lists before round 6).
ROUND6 = [
    ("grooming", "ur so peng for a year 8"),
    ("grooming", "i'll chuck you some vbucks if you do me a favour"),
    ("grooming", "keep us a secret yeah"),
    ("grooming", "save me as a girl's name on your phone"),
    ("grooming", "whats your cup size"),
    ("grooming", "send a selfie in your pe kit"),
    ("grooming", "i'm coming near your area on friday, we could link"),
    ("grooming", "how old are you actually, be honest"),
    ("grooming", "age doesn't matter if we love each other"),
    ("grooming", "i promise i won't tell anyone what you send"),
    ("grooming", "my pic is old, i look older in my profile pic than i am"),
    ("bullying", "the whole year is going to read your texts"),
    ("bullying", "i'm gonna make u regret this"),
    ("bullying", "don't let her sit with anyone at lunch"),
    ("bullying", "everyone in 6c hates you"),
    ("bullying", "write loser under all her posts"),
    ("drugs", "how much for an eighth"),
    ("drugs", "got a box of whippets for the park"),
    ("drugs", "my mate nicked his nans tramadol"),
    ("violence", "wet him on sight"),
    ("extremism", "the christchurch gunman was a hero"),
]


# Round 7 (issue 14): the families batch 9 missed, in wordings that are neither the entries'
# examples nor batch 9's texts (each missed by main's lists before round 7, checked in category).
ROUND7 = [
    ("grooming", "good game, which year are you in"),
    ("grooming", "my talent agency needs some photos of you first"),
    ("grooming", "im a modelling scout and youve got the perfect face"),
    ("grooming", "have you ever done anything with a boy"),
    ("grooming", "you chose dare so take a pic without your hoodie"),
    ("grooming", "every time you die you have to send me a pic"),
    ("grooming", "you already sent one so may as well send another"),
    ("grooming", "ill make u famous if u do everything i say"),
    ("grooming", "they bought me clothes and now they want me to do jobs"),
    ("grooming", "he said if i dont send one they will say im frigid"),
    ("grooming", "still up? send me a pic"),
    ("grooming", "i said i was 14 but im actually 20"),
    ("bullying", "someone set up a rate page for our class"),
    ("bullying", "everyone blocked me on snap"),
    ("bullying", "do everyone a favour and never come back"),
    ("bullying", "everyone can smell him, does he even wash"),
    ("bullying", "she should be in the special school"),
    ("bullying", "post the one where hes crying"),
    ("bullying", "i saw them shove her into the lockers again"),
    ("violence", "im gonna torch his bike"),
    ("drugs", "we huffed the gas canisters behind the shops"),
    ("drugs", "he can sort you out with some white"),
    ("extremism", "the shooter was a legend"),
]


# Round 8 (issue 14): the families batch 10 missed, across every category, in wordings that are
# neither the entries' examples nor batch 10's texts (each missed by main's lists before round 8,
# checked in category).
ROUND8 = [
    ("bullying", "got screenshots of ur dms, the whole year will see them tomorrow"),
    ("bullying", "nobody wants to be ur friend so stop trying"),
    ("bullying", "we all decided not to sit with her anymore"),
    ("bullying", "the girls voted to blank him all week"),
    ("discrimination", "hes a nonce queer dont sit near him"),
    ("discrimination", "lesbians are all pervs, keep them out of our changing rooms"),
    ("drugs", "who sells spice near the station"),
    ("drugs", "mans trapping and said i can help weigh it out"),
    ("extremism", "what gun did the christchurch shooter use"),
    ("extremism", "someone should hang the politicians for this"),
    ("extremism", "we should burn the 5g masts down"),
    ("grooming", "its okay for friends to swap pics, everyone does it"),
    ("grooming", "if u stop ill send ur dad the pics"),
    ("illegal", "we egged her house and smashed up the car"),
    ("illegal", "anyone got a pirated version of photoshop"),
    ("pornography", "u wanna sext later"),
    ("self_harm", "my cuts are infected but i cant tell anyone"),
    ("suicide", "can you die from hanging urself with a charger"),
    ("violence", "swear im gonna open him up next time"),
]


# Round 9 (issue 14): the families batch 11 missed (grooming as kindness and supervision checks,
# bullying as exclusion, rumours and threats to expose, plans in ordinary words), in wordings
# that are neither the entries' examples nor batch 11's texts (each missed by main's lists
# before round 9, checked in category).
ROUND9 = [
    ("grooming", "ill always be there for u when ur dad is at work"),
    ("grooming", "who else uses ur tablet besides u"),
    ("grooming", "what time do ur parents go to sleep on a school night"),
    ("grooming", "we can facetime later once ur mum is asleep"),
    ("grooming", "come round to mine after school, just dont say where ur going"),
    ("grooming", "u look gorgeous in that pic, got any more like it"),
    ("grooming", "the lads at ur school must be blind"),
    ("grooming", "ill message u not ur mum about saturday"),
    ("grooming", "is ur bedroom upstairs or downstairs, got a lock on it?"),
    ("bullying", "the whole class is going bowling apart from u"),
    ("bullying", "nobody would even notice if u was gone tbh"),
    ("bullying", "im showing everyone the pics from ur party"),
    ("bullying", "my whole friendship group stopped talking to me"),
    ("bullying", "lets all say he started it so he gets excluded"),
    ("bullying", "theres a group chat just to make fun of her"),
    ("violence", "me and u behind the shops at 4, bring ur boys"),
    ("drugs", "anyone holding for the weekend"),
    ("self_harm", "i wear long sleeves in summer so no one notices"),
    ("gambling", "i owe him 20 quid from the bets we did"),
    ("extremism", "we have to rise up against them before its too late"),
    ("discrimination", "deaf kids just hold everyone back in class"),
]


# Round 10: batch 12's own texts (the open corpus), one or two per family the round's entries
# were written for (secrecy and deleted chats, second accounts and app moves, bedtime and
# pic-for-pic requests, favours for game currency, sex talk as teaching; exclusion from parties
# and tables, rating pages, extortion, "move schools", SEN mocked, clips shared; drug menus and
# runners; weapons brought round, revenge; stolen goods, piracy, fake ID). Each was missed by
# main's lists before round 10 and is caught in its category after.
ROUND10 = [
    ("grooming", "d3l3te the msgs b4 ur dad gets home"),
    ("grooming", "go on incognito when you come on here so nothing saves in your history"),
    ("grooming", "keep it on the d.l yeah, nobody needs 2 kno we talk"),
    ("grooming", "message me from your other account, not the one your mum can see"),
    ("grooming", "move 2 t3l3gram, msgs vanish on there 😉"),
    ("grooming", "any1 home w u rn or jus u? 👀"),
    ("grooming", "snap me a p!c b4 bed"),
    ("grooming", "pic4pic? u go first tho"),
    ("grooming", "I can get you that skin you wanted, you just have to do me one little favour"),
    ("grooming", "sending you a video as a joke lol don't show it to anyone"),
    ("grooming", "your body's changing and there's nothing to be shy about with me"),
    (
        "bullying",
        "Amira's party is on saturday but dont tell Jess, she's not invited and "
        "she'd only make it weird",
    ),
    ("bullying", "tell the whole table not to let Ollie sit with us tomorrow"),
    ("bullying", "we've started a page rating every girl in year 8 out of 10, Chloe got a 2"),
    ("bullying", "bring me £5 tomorrow or the video goes in the group"),
    ("bullying", "y dont u jus m0ve sk00ls, no1 wud even notice"),
    ("bullying", "hes got autism so he wont get the joke, lets keep winding him up"),
    (
        "bullying",
        "ive been sending messages from Zara's account since she left it logged in, she's "
        "getting so much hate lol",
    ),
    ("bullying", "tr4sh player tr4sh person uninstall and never come back"),
    ("bullying", "billynomates 🤡 sittingonhisownagain lolol"),
    ("drugs", "need a yute 2 hold the line n do drops, £££ quick, no q's asked"),
    ("drugs", "my mate's older brother sells elf bars at school for a tenner, want one"),
    ("drugs", "c0ke or md for sat? whos the plug"),
    (
        "violence",
        "i know where he lives, me and my cousin are going round there saturday night with a bat",
    ),
    ("violence", "revenge is comin 4 u, ur house, 2nite, watch 👀🔪"),
    ("violence", "ima beat the sh*t outta her at the bus stop 2moz, tell the girls to record"),
    ("illegal", "free movie streaming sites no sign up 123movies alternative"),
    ("illegal", "buy fake provisional driving licence uk"),
    # Bullying inside a game: a game named no longer cancels it (guards.toml), only lowers it.
    ("bullying", "everyone kick her from the game every time she joins, nobody wants her"),
    ("bullying", "everyone report him in roblox so he gets banned, we want him gone"),
]


def categories(compiled: Compiled, text: str) -> set[str]:
    return {a.category for a in match_text(compiled, text) if not a.suppressed}


def test_every_category_has_recall_cases(policy: Policy, ks2: Compiled) -> None:
    counts = Counter(category for category, _ in RECALL)
    assert set(counts) == {c.name for c in policy.categories}
    assert all(4 <= n <= 6 for n in counts.values()), counts
    assert set(counts) <= set(ks2.profile.categories)  # all are enabled for KS2


TYPED = [pytest.param(category, text, id=f"{name}-{i}")
         for name, cases in (("recall", RECALL), ("round5", ROUND5), ("round6", ROUND6),
                             ("round7", ROUND7), ("round8", ROUND8), ("round9", ROUND9),
                             ("round10", ROUND10))
         for i, (category, text) in enumerate(cases)]  # fmt: skip


@pytest.mark.parametrize(("category", "text"), TYPED)
def test_typed_text_alerts_in_its_category(ks2: Compiled, category: str, text: str) -> None:
    assert category in categories(ks2, text)


@pytest.mark.parametrize(("category", "text"), RECALL)
def test_searched_text_alerts_in_its_category(ks2: Compiled, category: str, text: str) -> None:
    result = UrlMatcher(ks2).match("https://www.google.co.uk/search?q=" + quote_plus(text))
    assert result.engine == "google"
    assert category in {a.category for a in result.alerts if not a.suppressed}


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_text_does_not_alert(ks2: Compiled, text: str) -> None:
    assert match_text(ks2, text) == []
