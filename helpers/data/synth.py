"""Seeded synthetic dialogues for the agent domain: training data and a held-out dev set.

Introduced in notebook 01 and lab 01 (train your own SLM). The dev set uses phrasings (templates), ids
and city names that never occur in training: `split="dev"` draws from held-out pools and the training
sampler rejects any dev value.

Every dialogue is a list of OpenAI-style messages; tool results come from the same result shapes as
`helpers.domain.tools.Shop` (a test checks the keys agree).
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from helpers.data.phrasebank import BANK_REQUESTS, BANK_TEXTS
from helpers.domain.tools import (CONDITIONS, FIRST_NAMES, LAST_NAMES, ORDER_STATUSES, PRODUCTS, TIERS,
                                  TOOL_NAMES, WAREHOUSES, openai_tools)
from helpers.domain.chat_format import FOUNDRY_PROTOCOL_PREFIX, MESSAGE_FRAME, dump_json

# ----------------------------------------------------------------------------------------------- values
CITIES_TRAIN = """Paris|London|Berlin|Madrid|Rome|Lisbon|Dublin|Amsterdam|Brussels|Vienna|Prague|Warsaw|
Budapest|Athens|Oslo|Stockholm|Helsinki|Copenhagen|Tallinn|Riga|Vilnius|Bucharest|Sofia|Belgrade|Zagreb|
Ljubljana|Bratislava|Kyiv|Minsk|Moscow|Istanbul|Ankara|Cairo|Tunis|Algiers|Casablanca|Lagos|Accra|Nairobi|
Addis Ababa|Kampala|Dakar|Johannesburg|Cape Town|Durban|Luanda|Harare|Lusaka|Tokyo|Osaka|Kyoto|Seoul|Busan|
Beijing|Shanghai|Shenzhen|Hong Kong|Taipei|Manila|Hanoi|Ho Chi Minh City|Bangkok|Singapore|Jakarta|
Kuala Lumpur|Delhi|Mumbai|Bangalore|Chennai|Kolkata|Karachi|Lahore|Dhaka|Kathmandu|Colombo|Tehran|Baghdad|
Riyadh|Dubai|Doha|Muscat|Amman|Beirut|Tel Aviv|Sydney|Melbourne|Brisbane|Perth|Auckland|Wellington|
New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|Austin|Seattle|
Denver|Boston|Miami|Atlanta|Detroit|Portland|Las Vegas|Toronto|Vancouver|Calgary|Ottawa|Montreal|
Mexico City|Guadalajara|Monterrey|Havana|Bogota|Medellin|Lima|Quito|Santiago|Buenos Aires|Montevideo|
Asuncion|La Paz|Caracas|Rio de Janeiro|Brasilia|Salvador|Recife|Manchester|Liverpool|Glasgow|Edinburgh|
Cardiff|Belfast|Birmingham|Bristol|Leeds|Munich|Hamburg|Cologne|Frankfurt|Stuttgart|Dresden|Leipzig|Lyon|
Marseille|Toulouse|Nice|Bordeaux|Lille|Nantes|Strasbourg|Barcelona|Valencia|Seville|Bilbao|Porto|Milan|
Naples|Turin|Florence|Venice|Bologna|Geneva|Basel|Bern|Antwerp|Rotterdam|Utrecht|Gothenburg|Malmo|Bergen|
Krakow|Gdansk|Wroclaw|Brno|Graz|Salzburg|Split|Thessaloniki|Izmir|Marrakesh|Zanzibar|Mombasa|Windhoek|
Sapporo|Nagoya|Fukuoka|Chengdu|Wuhan|Xi'an|Pune|Jaipur|Goa|Cebu|Da Nang|Phuket|Chiang Mai|Bali|
Adelaide|Hobart|Darwin|Christchurch|Honolulu|Anchorage|Nashville|New Orleans|Minneapolis|Pittsburgh|
Baltimore|Sacramento|Quebec City|Halifax|Winnipeg|Edmonton|Cancun|Cusco|Cartagena|Valparaiso|Cordoba|
São Paulo|Zürich|Kraków|Málaga|Düsseldorf|Göteborg|Reykjavík|Tromsø|Linköping|Genève|Bogotá|Medellín|
Stratford-upon-Avon|Aix-en-Provence|Saint-Étienne|Frankfurt am Main|Newcastle upon Tyne|St. Louis|
Port Louis|Santa Cruz|San José|Baton Rouge|Salt Lake City|Kansas City|Oklahoma City|Jersey City""".replace(
    "\n", "").split("|")

CITIES_DEV = """Lausanne|Nuremberg|Innsbruck|Aarhus|Uppsala|Turku|Tartu|Kaunas|Plovdiv|Timisoara|Cluj-Napoca|
Debrecen|Ostrava|Poznan|Lodz|Heidelberg|Freiburg|Bremen|Hanover|Montpellier|Rennes|Grenoble|Dijon|
Zaragoza|Granada|Alicante|Coimbra|Braga|Palermo|Catania|Verona|Genoa|Lugano|Ghent|Bruges|Maastricht|
Eindhoven|Galway|Cork|Aberdeen|Inverness|Swansea|Brighton|Oxford|Cambridge|Yokohama|Kobe|Hiroshima|
Incheon|Daegu|Hangzhou|Nanjing|Kaohsiung|Davao|Surabaya|Penang|Hyderabad|Ahmedabad|Lucknow|Chittagong|
Isfahan|Shiraz|Tabriz|Jeddah|Abu Dhabi|Kuwait City|Manama|Haifa|Alexandria|Fez|Abuja|Kumasi|Arusha|
Kigali|Maputo|Gaborone|Bulawayo|Port Elizabeth|Toowoomba|Geelong|Dunedin|Rotorua|Tucson|Albuquerque|
El Paso|Fort Worth|Charlotte|Raleigh|Richmond|Buffalo|Cleveland|Cincinnati|Columbus|Milwaukee|Omaha|
Boise|Spokane|Tacoma|Victoria|Regina|Saskatoon|Hamilton|Puebla|Tijuana|Oaxaca|Merida|Guayaquil|Arequipa|
Rosario|Mendoza|Porto Alegre|Curitiba|Fortaleza|Manaus|Belo Horizonte|Santa Fe|Kingston|Nassau|
Asunción|Mérida|Niš|Łódź|Poznań|Ålesund|Århus|Besançon|Orléans|Cádiz|Córdoba|Würzburg|Lübeck|
Clermont-Ferrand|Castellón de la Plana|Sankt Gallen|Rio Grande|Bad Homburg|San Sebastián|Cap-Haïtien""".replace(
    "\n", "").split("|")

_SYL_ONSET = ["", "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kl", "l", "m", "n", "p",
              "pr", "qu", "r", "s", "sh", "st", "t", "tr", "v", "w", "y", "z", "th", "x", "sk", "sl", "gl"]
_SYL_VOWEL = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y", "ie", "oa", "ä", "ö", "ü", "é", "å", "ø", "í",
              "ó", "á", "ú", "ê", "ã", "ő"]
_SYL_CODA = ["", "", "", "n", "r", "s", "l", "m", "t", "k", "nd", "rg", "sk", "x", "th", "ng", "ck", "š", "ñ",
             "ł", "č", "ç", "ß"]
_CITY_WORDS = ["San", "Santa", "Port", "New", "Saint", "Fort", "Bad", "Lake", "North", "South", "East", "West",
               "Upper", "Little", "Great", "Mount", "El", "La", "Los", "Las", "Nova", "Novo", "Villa"]
_CITY_SUFFIX = ["City", "Town", "Bay", "Falls", "Springs", "Harbor", "Heights", "Beach", "Valley", "Hills",
                "am See", "upon Tyne", "de la Sierra", "do Sul", "Park"]


def _word(rng: random.Random, lo: int = 1, hi: int = 3) -> str:
    w = "".join(rng.choice(_SYL_ONSET) + rng.choice(_SYL_VOWEL) + rng.choice(_SYL_CODA)
                for _ in range(rng.randint(lo, hi)))
    return w.capitalize() if w else "Ola"


def random_city(rng: random.Random) -> str:
    """An invented place name (training only): teaches the model to copy, not to remember."""
    r = rng.random()
    if r < 0.55:
        name = _word(rng)
    elif r < 0.7:
        name = rng.choice(_CITY_WORDS) + " " + _word(rng)
    elif r < 0.8:
        name = _word(rng) + " " + rng.choice(_CITY_SUFFIX)
    elif r < 0.88:
        name = _word(rng) + "-" + rng.choice(["en", "sur", "le", "upon", "am", "de"]) + "-" + _word(rng, 1, 2)
    elif r < 0.91:
        name = _word(rng, 1, 2) + " " + _word(rng, 1, 2)
    elif r < 0.95:  # lowercase particles inside a name: the span does not end at the first small word
        name = f"{_word(rng)} {rng.choice(['de', 'de la', 'del', 'do', 'am', 'an der', 'on', 'la', 'di'])} {_word(rng)}"
    else:  # random letters: pure copying
        n = rng.randint(3, 12)
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(n)).capitalize()
    return name


ISSUES = """my laptop won't turn on|the printer on floor 3 is jammed|VPN keeps disconnecting|email is not syncing on my phone|
my screen flickers|I cannot log in to the portal|password reset link is broken|wifi is very slow in the meeting room|
the app crashes when I open settings|my keyboard is missing keys|outlook keeps asking for my password|
the invoice PDF will not download|two-factor codes never arrive|my account is locked|the checkout page shows an error|
the projector in room B has no signal|shared drive is read-only|teams calls drop after five minutes|
my monitor stays black|the payment was charged twice|the website is down|cannot connect to the database|
backups failed last night|my headset microphone does not work|the tracking link is broken|
the discount code is rejected|the laptop battery drains fast|my order arrived damaged|
the mobile app shows a blank screen|printer prints blank pages|software update is stuck at 99%|
the dashboard loads very slowly|I was logged out of everything|the camera is not detected|
sync conflict on the shared calendar|the label printer is offline|disk space warning on my PC""".replace(
    "\n", "").split("|")
ISSUES_DEV = """the scanner produces grey stripes|my docking station stops charging|the intranet search returns nothing|
calendar invites arrive twice|the barcode reader beeps but adds nothing|my VPN certificate expired|
the conference phone has an echo|excel freezes on large files|the kiosk touchscreen is unresponsive|
the gift card balance shows zero""".replace("\n", "").split("|")

REASONS = """I want a refund for a damaged item|billing dispute|the bot cannot solve my problem|complaint about late delivery|
my package was lost|I was charged the wrong amount|I need to cancel my contract|warranty claim for a broken screen|
I want to speak to a manager|the replacement never arrived|my account was hacked|
a question about my invoice|the technician never showed up|wrong item delivered|
I need help with a large business order|my subscription renewed without consent""".replace("\n", "").split("|")
REASONS_DEV = """a data privacy request|the courier was rude|an accessibility need|a pricing error on my receipt|
legal question about my contract""".replace("\n", "").split("|")

# Free text for training, built from parts: the model must learn to copy a span of the message, not to
# recall one of a few dozen memorised strings (with fixed lists it copied 0 of 43 held-out texts).
_ISSUE_THINGS = """laptop|printer|phone|tablet|monitor|second screen|keyboard|mouse|headset|webcam|docking station|
scanner|projector|router|wifi|VPN|email|mailbox|calendar|browser|password manager|badge reader|desk phone|
shared drive|file server|payroll app|CRM|ERP screen|POS terminal|cash register|label printer|receipt printer|
barcode scanner|time clock|smart board|TV in the lobby|elevator display|door badge|intranet|wiki|chat app|
video call app|ticket portal|expense tool|HR portal|timesheet page|backup job|antivirus|update service|
graphics card|hard drive|SSD|battery|charger|power supply|fan|touchpad|USB port|sound card|microphone|
speaker|bluetooth|login page|search page|checkout|loyalty app|mobile app|website|database|spreadsheet|
report builder|print queue|scan to email|fax machine|coffee machine|air conditioning|meeting room screen""".replace(
    "\n", "").split("|")
_ISSUE_OWNERS = ["my", "the", "our", "the new", "the old", "my work", "the team's", "the main", "a", "every"]
_ISSUE_PROBLEMS = """won't turn on|keeps crashing|is very slow|shows an error|does not connect|freezes every hour|
makes a loud noise|stopped working|keeps restarting|is stuck on loading|lost all my settings|prints blank pages|
will not sync|rejects my password|overheats|has no sound|shows the wrong date|drops the connection|
is missing|is broken|is flickering|cannot find the network|beeps constantly|needs a new cable|runs out of memory|
shows a blue screen|will not update|logs me out|is read-only|is full|is offline|is unreachable|times out|
returns error 500|opens then closes|cannot be installed|has a cracked screen|smells like smoke|
charges very slowly|disconnects randomly|shows garbled text|duplicates every entry|sends empty messages|
ignores my clicks|takes ten minutes to start|asks for a license key|lost its configuration|
is stuck at 0%|will not print in colour|stays in sleep mode|reboots when I plug it in|cannot reach the server""".replace(
    "\n", "").split("|")
_ISSUE_TAILS = ["", "", "", "", " since monday", " after the update", " in room 12", " on floor 2",
                " since this morning", " for everyone", " again", " since yesterday", " at the front desk",
                " when I use the VPN", " in the warehouse", " every afternoon", " on two machines"]
_REASON_PARTS = {
    "open": ["a refund for", "a complaint about", "a question about", "a problem with", "an issue with",
             "a dispute over", "a claim for", "feedback about", "a mistake on", "help with", "compensation for",
             "a return of", "an error in", "a cancellation of", "a change to"],
    "thing": ["my last order", "a damaged parcel", "my invoice", "my contract", "the delivery fee", "my account",
              "a double charge", "the warranty", "my subscription", "a missing item", "the installation",
              "my loyalty points", "a broken blender", "the late shipment", "a wrong size", "my data",
              "the price I paid", "a gift card", "my direct debit", "the repair", "a faulty charger",
              "my address change", "an old ticket", "the technician visit", "my business account"],
    "plain": ["the chatbot keeps looping", "nobody answered my emails", "I was overcharged twice",
              "the store refused my return", "my parcel went to a neighbour", "I need to close my account",
              "the driver left the box in the rain", "my card was declined at checkout",
              "I waited three weeks for a reply", "the product is unsafe", "my refund never arrived",
              "I want to change my delivery address", "the repair made it worse", "my password reset fails"],
}
_COPY_WORDS = """apple river stone blue seven quiet garden window paper silver north lamp orange rapid castle
forest yellow engine cloud mirror tiger velvet winter copper lemon bridge candle desert harbor island jacket
kettle ladder marble needle ocean pepper rocket saddle tunnel violet wagon yogurt zebra anchor basket cotton
dragon feather glacier hammer iris jungle kiwi lantern meadow nectar olive pillow quartz ribbon spoon tulip
umbrella valley walnut pixel cactus puzzle signal thunder magnet canyon falcon pencil scarlet timber vessel
broken missing late wrong slow noisy empty frozen locked blank strange double cold loud tiny huge old new
printer cable screen folder account invoice parcel badge ticket server module driver update license
""".split()


def _free_words(rng: random.Random, lo: int, hi: int) -> str:
    """Known words mixed with invented ones: a text the model can only reproduce by copying it."""
    return " ".join(rng.choice(_COPY_WORDS) if rng.random() < 0.6 else _word(rng).lower()
                    for _ in range(rng.randint(lo, hi)))


# Free texts as long as people write them: a second clause joined to the first, with numbers, error codes
# and contractions, so the model learns to copy a span to its end, not a few words of it (training only).
_JOINS = [" and ", ", ", " but ", " so ", " because ", " - ", " and now ", " since ", " when ", " after ",
          " and also ", ", and ", " even though ", "; "]
_EXTRA = ["nobody can explain why", "it happened {n} times today", "the error code is {code}", "I can't work",
          "my colleague has the same problem", "restarting didn't help", "it's the {nth} time this week",
          "the message says {code}", "I already tried reinstalling it", "it worked fine {when}",
          "we lost {n} orders", "nobody answered my emails", "I've been waiting {n} days", "it shows {code}",
          "the help page doesn't load", "it won't let me log in", "the screen goes black", "I was charged {n} times",
          "it's been {n} weeks", "the app says {code}", "nobody called me back", "the box was empty",
          "it doesn't accept code {code}", "I paid {n} euros for nothing", "it isn't fixed yet",
          "we can't take payments", "half the team can't print", "the file is {n} MB", "version {n}.{m} broke it"]
_WHEN = ["yesterday", "last week", "before the update", "on monday", "until this morning", "for years"]
_NTH = ["second", "third", "fourth", "fifth"]


def _code(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return f"error {rng.randint(100, 999)}"
    if r < 0.5:
        return "0x" + "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
    if r < 0.75:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 7))) + str(rng.randint(1, 99))
    return f"{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}-{rng.randint(10, 9999)}"


def _longer(rng: random.Random, text: str, base: Callable[[random.Random], str]) -> str:
    """`text` with one or two more clauses joined on (training free text)."""
    for _ in range(1 if rng.random() < 0.8 else 2):
        if rng.random() < 0.6:
            more = rng.choice(_EXTRA).format(n=rng.randint(2, 40), m=rng.randint(0, 9), code=_code(rng),
                                             nth=rng.choice(_NTH), when=rng.choice(_WHEN))
        else:
            more = base(rng)
        text = text + rng.choice(_JOINS) + more
    return text[0].upper() + text[1:] if rng.random() < 0.2 else text


def random_issue(rng: random.Random) -> str:
    """A made-up support issue (training only): one or, in 40 % of them, two or three clauses."""
    text = _issue_clause(rng)
    return _longer(rng, text, _issue_clause) if rng.random() < 0.4 else text


def random_reason(rng: random.Random) -> str:
    """A made-up escalation reason (training only): one or, in 40 % of them, two or three clauses."""
    text = _reason_clause(rng)
    return _longer(rng, text, _reason_clause) if rng.random() < 0.4 else text


def _issue_clause(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.2:
        return rng.choice(ISSUES)
    if r < 0.6:
        thing = rng.choice(_ISSUE_THINGS) if rng.random() < 0.75 else _word(rng).lower()
        return f"{rng.choice(_ISSUE_OWNERS)} {thing} {rng.choice(_ISSUE_PROBLEMS)}{rng.choice(_ISSUE_TAILS)}"
    if r < 0.75:
        return " ".join(rng.choice(_COPY_WORDS) for _ in range(rng.randint(2, 6)))
    return f"{rng.choice(_ISSUE_OWNERS)} {_free_words(rng, 2, 7)}"


def _reason_clause(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return rng.choice(REASONS)
    if r < 0.6:
        return f"{rng.choice(_REASON_PARTS['open'])} {rng.choice(_REASON_PARTS['thing'])}"
    if r < 0.7:
        return rng.choice(_REASON_PARTS["plain"])
    if r < 0.8:
        return " ".join(rng.choice(_COPY_WORDS) for _ in range(rng.randint(2, 6)))
    return f"{rng.choice(['a', 'an', 'the', 'my', 'a question about', 'a problem with'])} {_free_words(rng, 1, 6)}"


_DEV_TEXTS = {t.casefold() for t in ISSUES_DEV + REASONS_DEV}


# Words built from the tokenizer's own pieces (training only, when the trainer passes them): a model can only
# copy a token it has learned to copy. Measured on the 1024-piece tokenizer, 245 of its 646 word pieces never
# occurred in a string argument of 20,000 training dialogues (e.g. `kiosk`, `produ`, `quest`), so a held-out
# word made of them came back as another word ("the kiosk touchscreen" -> "the laptop touchscreen").
def copy_pieces(tokenizer: Any) -> list[str]:
    """The word pieces of `tokenizer` (letters only, at least two of them), for `DialogueSampler(copy_words=)`."""
    pieces = {t.replace("\u2581", "") for t in tokenizer.get_vocab()}
    return sorted(p for p in pieces if len(p) >= 2 and p.isalpha() and not p.startswith("<"))


def pieces_in_arguments(gen: DialogueSampler, tokenizer: Any, n: int,
                        tools: tuple[str, ...] = ("create_ticket", "escalate_to_human", "get_weather")) -> set[int]:
    """Token ids that occur in a string argument of `n` requests per tool drawn from `gen` (notebook 01)."""
    seen: set[int] = set()
    for _ in range(n):
        for tool in tools:
            for v in gen.request(tool)[1].values():
                if isinstance(v, str):
                    seen.update(tokenizer(v, add_special_tokens=False)["input_ids"])
    return seen


def piece_text(rng: random.Random, pieces: list[str], lo: int = 1, hi: int = 5) -> str:
    """One to five words, each one to three random pieces long: text the model can only reproduce by copying."""
    words = []
    for _ in range(rng.randint(lo, hi)):
        w = "".join(rng.choice(pieces) for _ in range(rng.choices([1, 2, 3], weights=[5, 3, 1])[0]))
        words.append(w if rng.random() < 0.5 else rng.choice(_COPY_WORDS))
    text = " ".join(words)
    return text.lower() if rng.random() < 0.5 else text


_DEV_CITIES = {c.casefold() for c in CITIES_DEV}

# ----------------------------------------------------------------------------------------------- phrasings
# Training templates and held-out dev templates per intent. {x} marks the slot values.
T: dict[str, dict[str, list[str]]] = {
    "lookup_order": {
        "train": [
            "where is my order {oid}", "where's order {oid}?", "can you check order {oid}",
            "what is the status of order {oid}?", "status of {oid}", "track order {oid} please",
            "has order {oid} shipped yet?", "any update on order {oid}?", "I want to know where order {oid} is",
            "look up order {oid}", "order {oid} - where is it?", "check the status of my order {oid}",
            "my order number is {oid}, has it shipped?", "when will order {oid} arrive?",
            "could you look up order {oid} for me", "what's happening with order {oid}",
            "track {oid}", "I placed order {oid} last week, where is it?", "order {oid} status",
            "did order {oid} ship?", "please find my order {oid}", "is order {oid} delivered?",
            "need the delivery date for order {oid}", "what happened to my order {oid}?",
            "lookup order {oid}", "info on order {oid} please", "can u track my order {oid}",
            "{oid} is my order number, where is my package", "still waiting for order {oid}",
            "my package with order id {oid} hasn't arrived", "tell me about order {oid}",
            "check on order {oid}", "where is the package for order {oid}?", "eta for order {oid}?",
            "I'd like an update on my order {oid}", "show me order {oid}", "was order {oid} cancelled?",
            "order status for {oid} please", "get me the details of order {oid}", "where's my stuff? order {oid}",
        ],
        "dev": [
            "my parcel from order {oid} is late, what's going on?", "fetch the order record {oid}",
            "is there any news regarding order {oid}", "how far along is order {oid}",
            "I'm chasing order {oid}", "delivery progress on {oid}?", "what's the latest with my purchase {oid}",
            "order {oid}: shipped or not?",
        ],
    },
    "lookup_customer": {
        "train": [
            "look up customer {cid}", "who is customer {cid}?", "find customer {cid}", "customer {cid} details",
            "get the profile for {cid}", "can you pull up customer {cid}", "show me account {cid}",
            "what tier is customer {cid}?", "what's the email of customer {cid}", "I am customer {cid}",
            "my customer id is {cid}, what's on my account?", "check account {cid}",
            "fetch customer info for {cid}", "details for customer id {cid} please", "lookup {cid}",
            "who owns account {cid}", "customer lookup {cid}", "please look up the customer {cid}",
            "what do you have on file for {cid}?", "open the customer record {cid}",
            "can you tell me about customer {cid}", "I need the account details of {cid}",
            "which loyalty tier does {cid} have", "get customer {cid}",
        ],
        "dev": [
            "pull the membership info for {cid}", "what name is registered under {cid}?",
            "I'd like to review the client {cid}", "account holder {cid}, who is that?",
        ],
    },
    "check_inventory": {
        "train": [
            "is {sku} in stock?", "check inventory for {sku}", "how many {sku} do you have?",
            "do you have {sku} in stock", "stock level of {sku}", "check stock {sku}",
            "is product {sku} available?", "can you check if {sku} is available", "inventory for {sku} please",
            "how many units of {sku} are left?", "any {sku} left?", "availability of {sku}",
            "I want to buy {sku}, is it in stock?", "check the warehouse for {sku}",
            "is item {sku} available to order", "what's the stock on {sku}", "stock check: {sku}",
            "do we still have {sku}?", "how much {sku} is in the warehouse", "is {sku} sold out?",
            "could you see whether {sku} is in stock", "where is {sku} stocked",
        ],
        "dev": [
            "can I still get my hands on {sku}", "what quantity of {sku} remains on hand?",
            "has {sku} run out", "tell me the units available for article {sku}",
        ],
    },
    "get_weather": {
        "train": [
            "what's the weather in {city}?", "weather in {city}", "how is the weather in {city} today",
            "is it raining in {city}?", "weather for {city} please", "what's the temperature in {city}",
            "how hot is it in {city}?", "will I need an umbrella in {city}", "forecast for {city}",
            "tell me the weather in {city}", "is it cold in {city} right now?", "{city} weather",
            "what's it like outside in {city}", "current weather {city}", "how's the weather over in {city}?",
            "check the weather for {city}", "is it sunny in {city}?", "I'm going to {city}, what's the weather like?",
            "weather report for {city}", "what is the weather like in {city} right now?",
            "temperature in {city}?", "any rain in {city} today?", "is it snowing in {city}",
            "give me the weather of {city}", "can you check the weather in {city} for me",
            "what should I wear in {city} today, how's the weather", "{city}: weather?",
            "how warm is {city} today", "weather at {city}", "do I need a jacket in {city}?",
            "is it raining in {city} this afternoon", "how's the weather in {city} this week?",
            "is {city} sunny today", "is {city} cold right now", "is {city} warm this weekend?",
            "forecast for {city} for tomorrow", "any storms near {city} tonight?", "{city} weather today please",
            "is it windy in {city} at present", "weather in {city} currently", "is {city} rainy or sunny",
            "temperature over {city} this morning", "what's the sky like above {city} now",
            "I'm travelling to {city} tomorrow, is it cold there?", "heading to {city}, what's the forecast",
        ],
        "dev": [
            "conditions outside in {city} at the moment?", "I'm flying to {city}, skies clear there?",
            "what are the skies doing over {city}", "tell me how the climate is today in {city}",
            "current conditions for {city}", "is {city} wet or dry today",
        ],
    },
    "schedule_callback": {
        "train": [
            "please call me back at {time}, I'm {cid}", "schedule a callback for {cid} at {time}",
            "can someone call me at {time}? my id is {cid}", "I'd like a callback at {time}, customer {cid}",
            "book a call for customer {cid} at {time}", "call {cid} back at {time}",
            "set up a phone call at {time} for {cid}", "{cid} wants a callback at {time}",
            "arrange a callback for {cid} around {time}", "have an agent ring me at {time}, account {cid}",
            "I'm customer {cid}, please phone me at {time}", "callback for {cid} at {time} please",
            "can you call me back? {cid}, at {time}", "schedule a call with {cid} for {time}",
            "please have someone call customer {cid} at {time}", "ring {cid} at {time}",
            "request a callback at {time} for account {cid}", "call me at {time}, customer id {cid}",
            "I want a callback tomorrow at {time}, I'm {cid}", "put {cid} down for a callback at {time}",
        ],
        "dev": [
            "could a representative phone {cid} around {time}?", "reach me by phone at {time} - {cid}",
            "line up a return call at {time} for client {cid}", "give {cid} a ring at {time}",
        ],
    },
    "run_diagnostics": {
        "train": [
            "run diagnostics on {srv}", "check server {srv}", "is {srv} healthy?", "diagnose {srv}",
            "run a health check on {srv}", "{srv} seems slow, can you check it", "what's the status of {srv}",
            "please run diagnostics for system {srv}", "check the health of {srv}", "is {srv} down?",
            "run a diagnostic on server {srv}", "{srv} is acting up", "can you test {srv}",
            "how is {srv} doing", "check cpu and disk on {srv}", "diagnostics for {srv} please",
            "something is wrong with {srv}", "investigate {srv}", "scan {srv} for problems",
            "run checks on {srv}", "server {srv} keeps timing out, check it",
        ],
        "dev": [
            "is machine {srv} overloaded?", "do a quick health scan of {srv}", "examine host {srv}",
            "{srv} throws errors, take a look",
        ],
    },
    "create_ticket": {
        "train": [
            "open a ticket: {issue}", "create a ticket for {issue}", "{issue}, please open a ticket",
            "file a support ticket, {issue}", "I need a ticket: {issue}", "log a ticket about {issue}",
            "raise a ticket: {issue}", "{issue}. can you create a ticket?", "please report this: {issue}",
            "new ticket - {issue}", "submit a ticket saying {issue}", "create a support ticket: {issue}",
            "open a support case for {issue}", "can you log this issue: {issue}", "ticket please: {issue}",
            "{issue} - open a ticket", "report a problem: {issue}", "make a ticket about {issue}",
        ],
        "dev": [
            "put in a helpdesk request: {issue}", "register an incident, {issue}",
            "start a case for me: {issue}", "help desk item needed - {issue}",
        ],
    },
    "calculate_circle_area": {
        "train": [
            "what is the area of a circle with radius {r}?", "area of a circle radius {r}",
            "calculate the area of a circle with a radius of {r}", "circle area for r = {r}",
            "compute circle area, radius {r}", "if the radius is {r}, what's the area of the circle?",
            "a circle has radius {r}, what is its area", "area of circle with r={r}",
            "how big is a circle of radius {r}", "find the area of a circle whose radius is {r}",
            "radius {r}: circle area?", "circle with radius {r} cm, area?", "what's the area for radius {r}",
            "calculate circle area with radius {r} meters", "I need the area of a round table with radius {r}",
        ],
        "dev": [
            "how much surface does a disc of radius {r} cover", "disk area when r is {r}?",
            "give me pi r squared for r={r}",
        ],
    },
    "get_current_time": {
        "train": [
            "what time is it?", "what's the time", "current time please", "tell me the time",
            "what is the date today?", "what's today's date", "do you know what time it is",
            "time?", "what day is it today", "can you tell me the current time", "what time is it now",
            "give me the current date and time", "what's the time right now?", "the time please",
            "date and time?", "clock check: what time is it", "is it late? what's the time",
        ],
        "dev": [
            "got the hour?", "which date is it", "how late is it right now", "tell me today's date and hour",
        ],
    },
    "escalate_to_human": {
        "train": [
            "I want to talk to a human, I'm {cid}, {reason}", "escalate {cid} to a human: {reason}",
            "please connect me with a real person, customer {cid}, reason: {reason}",
            "get me a human agent. {cid}. {reason}", "transfer {cid} to support staff because {reason}",
            "I need a person, not a bot. my id is {cid} and {reason}",
            "escalate this for customer {cid}: {reason}", "hand me over to a human, {cid}, {reason}",
            "let me speak to an agent, account {cid}, {reason}", "human please! {cid} - {reason}",
            "escalate to a human for {cid}, reason {reason}", "I'm {cid} and I want a human: {reason}",
            "connect {cid} with an operator: {reason}", "can a real person help me? {cid}, {reason}",
        ],
        "dev": [
            "route {cid} to a live representative, topic: {reason}", "I demand a staff member - {cid} - {reason}",
            "pass me to someone from your team, I'm {cid}; {reason}",
        ],
    },
}

# Share of training requests and no-tool texts drawn from the phrase bank (`helpers.data.phrasebank`):
# templates written by helper agents that never saw this generator or the evaluation sets.
BANK_SHARE = 0.4

# How people state a ticket's priority (training only), before or after the request: {t} is the request.
PRIORITY_FORMS = [(prio, form) for prio, forms in {
    "high": ["URGENT: {t}", "Urgent - {t}", "urgent! {t}", "{t}, it's urgent", "{t}. This is urgent.", "{t} asap",
             "{t}, urgent please", "{t} - high priority", "{t} (urgent)", "top priority: {t}", "emergency: {t}",
             "{t}. Critical!", "critical - {t}", "{t}, needs fixing asap", "high prio: {t}", "{t}. high priority",
             "P1: {t}", "{t}!! urgent", "asap please: {t}", "this is critical: {t}", "{t}, it's an emergency"],
    "low": ["low priority: {t}", "{t}, no rush", "{t}. Not urgent.", "{t} (no rush)", "not urgent: {t}",
            "no hurry - {t}", "{t}, whenever you have time", "{t}. low priority", "low prio - {t}",
            "minor issue: {t}", "{t}, it can wait", "when you get a chance: {t}", "{t} - not urgent at all",
            "{t}. no rush at all", "nothing urgent, {t}"],
    "medium": ["{t}", "{t}", "{t}", "medium priority: {t}", "{t} (medium priority)", "normal priority - {t}",
               "{t}, medium priority", "priority medium: {t}"],
}.items() for form in forms]

# Compositional phrasings (training only): a question frame around a noun phrase of the request, so the
# model meets each intent in many more word orders than the whole-sentence templates give.
FRAMES = ["could you tell me {q}", "do you know {q}", "I'd like to know {q}", "I need to know {q}",
          "can you find out {q}", "please check {q}", "can I ask {q}", "let me know {q}", "I want to find out {q}",
          "would you check {q}", "any idea {q}", "help me find out {q}", "tell me {q}", "I'm asking {q}",
          "{q}, can you check?", "{q} - do you know?", "need info: {q}"]
CORES: dict[str, list[str]] = {
    "lookup_order": ["where my order {oid} is", "the status of order {oid}", "when order {oid} will arrive",
                     "if order {oid} has shipped", "what happened to order {oid}", "the delivery date of order {oid}",
                     "whether my package {oid} is on its way", "the tracking status for {oid}",
                     "how my order {oid} is doing", "if my shipment {oid} left the warehouse"],
    "lookup_customer": ["who customer {cid} is", "the details of account {cid}", "which tier {cid} is in",
                        "the email on file for {cid}", "what you have on customer {cid}",
                        "the name on account {cid}", "the profile of user {cid}"],
    "check_inventory": ["if {sku} is in stock", "how many {sku} are left", "whether {sku} is available",
                        "the stock level of {sku}", "if you still sell {sku}", "how many units of {sku} you have",
                        "whether {sku} is sold out", "the availability of item {sku}"],
    "get_weather": ["the weather in {city}", "the forecast for {city}", "the temperature in {city}",
                    "what the weather is like in {city}", "how cold it is in {city}", "if it rains in {city}",
                    "if I need an umbrella in {city}", "how warm it is in {city} today", "if it is sunny in {city}",
                    "the current weather for {city}", "whether it will snow in {city}", "how windy it is in {city}"],
    "run_diagnostics": ["if {srv} is healthy", "the health of server {srv}", "what is wrong with {srv}",
                        "the cpu and disk status of {srv}", "whether {srv} is overloaded", "if system {srv} is up"],
    "calculate_circle_area": ["the area of a circle with radius {r}", "how big a circle of radius {r} is",
                              "the circle area for radius {r}", "the area when the radius is {r}"],
    "get_current_time": ["what time it is", "the current time", "today's date", "what day it is",
                         "the time right now", "the date and time"],
}

# Word-level paraphrase for training requests: each listed word may be swapped for one of its
# neighbours, so an intent is recognised from its meaning rather than from one memorised wording.
SYNONYMS: dict[str, list[str]] = {
    "order": ["purchase", "parcel", "package", "shipment", "delivery", "order"],
    "package": ["parcel", "order", "box", "shipment", "delivery"],
    "where": ["where", "where exactly"],
    "check": ["check", "look at", "verify", "inspect", "review", "see"],
    "look": ["look", "check", "search"],
    "find": ["find", "locate", "look up", "get"],
    "status": ["status", "progress", "state", "situation"],
    "update": ["update", "news", "info", "status"],
    "track": ["track", "trace", "follow", "locate"],
    "arrive": ["arrive", "get here", "be delivered", "show up"],
    "customer": ["customer", "client", "member", "account holder", "user"],
    "account": ["account", "profile", "record", "membership"],
    "details": ["details", "info", "information", "data", "record"],
    "stock": ["stock", "inventory", "supply"],
    "available": ["available", "in stock", "obtainable", "on hand"],
    "left": ["left", "remaining", "on hand", "available"],
    "weather": ["weather", "forecast", "conditions", "climate", "sky"],
    "raining": ["raining", "pouring", "drizzling", "wet"],
    "cold": ["cold", "chilly", "freezing", "cool"],
    "hot": ["hot", "warm", "boiling", "sweltering"],
    "sunny": ["sunny", "clear", "bright", "cloudless"],
    "temperature": ["temperature", "temp", "heat"],
    "call": ["call", "phone", "ring", "contact", "dial"],
    "callback": ["callback", "call back", "return call", "phone call"],
    "schedule": ["schedule", "book", "arrange", "plan", "set up"],
    "server": ["server", "machine", "host", "box", "system", "node"],
    "diagnostics": ["diagnostics", "health check", "checks", "tests", "a scan"],
    "healthy": ["healthy", "ok", "fine", "working", "up"],
    "slow": ["slow", "sluggish", "laggy", "overloaded"],
    "ticket": ["ticket", "case", "incident", "request", "report", "issue"],
    "open": ["open", "create", "file", "raise", "log", "start", "submit"],
    "create": ["create", "open", "make", "file", "raise", "start"],
    "problem": ["problem", "issue", "fault", "incident", "bug"],
    "human": ["human", "person", "real person", "staff member", "representative", "agent", "operator"],
    "agent": ["agent", "person", "human", "representative", "colleague"],
    "talk": ["talk", "speak", "chat"],
    "connect": ["connect", "transfer", "put", "pass", "route"],
    "escalate": ["escalate", "transfer", "hand over", "forward"],
    "area": ["area", "surface", "size"],
    "circle": ["circle", "disc", "disk", "round shape"],
    "calculate": ["calculate", "compute", "work out", "figure out"],
    "time": ["time", "hour", "clock"],
    "date": ["date", "day"],
    "tell": ["tell", "show", "give", "let me know"],
    "please": ["please", "pls", "kindly", "if you can"],
    "can": ["can", "could", "would"],
    "want": ["want", "need", "would like", "wish"],
}


# Tools whose request needs a value the user may forget: the model asks for it instead of calling.
MISSING = {
    "lookup_order": (["where is my order?", "can you track my package", "check my order status please",
                      "has my order shipped?", "I want to know where my order is"],
                     ["what is your order number?", "Sure, what is the order number?",
                      "Happy to check. Could you give me the order number?"],
                     ["it's {oid}", "{oid}", "order {oid}", "the number is {oid}", "#{oid}"]),
    "lookup_customer": (["look up my account", "can you find my customer details", "check my profile"],
                        ["Sure, what is your customer id? It looks like C-12345.",
                         "Could you give me your customer id (C- followed by digits)?"],
                        ["{cid}", "it's {cid}", "my id is {cid}"]),
    "check_inventory": (["is it in stock?", "do you have that product?", "check stock for me"],
                        ["Which product? Please give me its SKU, like SKU-AB123.",
                         "Sure, what is the product SKU?"],
                        ["{sku}", "the sku is {sku}", "{sku} please"]),
    "get_weather": (["what's the weather like?", "how is the weather today?", "is it going to rain?"],
                    ["Which city should I check?", "Sure, for which city?"],
                    ["{city}", "in {city}", "for {city} please"]),
    "run_diagnostics": (["run diagnostics", "check the server please", "can you run a health check?"],
                        ["Which system should I check? Please give its id, like srv-12.",
                         "Sure, which server id?"],
                        ["{srv}", "on {srv}", "server {srv}"]),
}

GREETINGS = ["hi", "hello", "hey", "good morning", "good afternoon", "good evening", "hi there", "hello!",
             "hey there!", "yo", "greetings", "morning!", "hiya", "howdy", "hello, anyone there?", "hi :)"]
GREETINGS_DEV = ["heya", "good day to you", "salutations", "hello hello"]
THANKS = ["thanks", "thank you", "thanks a lot!", "great, thanks", "perfect, thank you", "cheers", "thx",
          "awesome thanks", "ok thank you", "many thanks", "that's helpful, thanks"]
THANKS_DEV = ["much appreciated", "thank you kindly", "brilliant, ta"]
BYES = ["bye", "goodbye", "see you", "that's all, bye", "have a nice day", "ok bye"]
SMALLTALK = ["how are you?", "who are you?", "what can you do?", "are you a robot?", "what is your name?",
             "can you help me?", "what do you do"]
OUT_OF_DOMAIN = [
    "what is the capital of France?", "write me a poem about the sea", "tell me a joke",
    "who won the world cup in 2018?", "translate hello into Spanish", "how do I bake bread?",
    "what is 17 times 23?", "recommend a good movie", "explain quantum physics", "who is the president?",
    "what's the meaning of life?", "can you write python code to sort a list", "what is the square root of 81",
    "how tall is mount everest", "summarize the news for me", "what's a good name for a cat",
    "play some music", "book me a flight to Rome", "how do I lose weight", "what is bitcoin worth",
    "what's the area of a square with side 4?", "order a pizza for me", "how many legs does a spider have",
    "sing me a song", "what's your favourite colour", "how far is the moon",
]
# Compositional no-tool requests and social phrases (training only): a request that merely mentions a
# season, a number or a place is still outside the tools; a short social phrase never calls a tool.
_OOD_ASK = ["write", "compose", "give me", "tell me", "make up", "draft", "send me", "can you write", "I'd like",
            "create", "invent"]
_OOD_THING = ["a poem", "a story", "a joke", "a limerick", "a song", "a riddle", "a short essay", "a fun fact",
              "a sonnet", "a slogan", "a speech", "a bedtime story", "a toast", "a quiz", "some trivia"]
_OOD_TOPIC = ["the sea", "cats", "winter", "love", "space", "football", "history", "coffee", "mountains", "rain",
              "a dragon", "friendship", "the moon", "summer", "my dog", "pizza", "robots", "the weather", "trains",
              "spring", "the night sky", "a storm", "my boss", "the ocean", "birthdays", "snow", "the sun"]
_OOD_PATTERNS = [
    "{ask} {thing} about {topic}", "which {item} is the best", "recommend a {item}", "what {item} should I buy",
    "how does a {mech} work", "explain how a {mech} works", "why is the sky blue", "who invented the {mech}",
    "what is the capital of {country}", "how many people live in {country}", "book a {booking} for {when}",
    "order {food} for {n} people", "what is {a} plus {b}", "what is {a} times {b}", "how many grams in a pound",
    "how do I {activity}", "teach me to {activity}", "find me a {booking} near {country}", "play {music}",
    "set an alarm for {when}", "remind me to {activity} {when}", "what's your opinion on {topic}",
]
_OOD_FILL = {
    "item": ["phone", "laptop for students", "movie", "book", "pizza topping", "holiday destination", "diet",
             "video game", "car", "board game", "running shoe", "podcast"],
    "mech": ["rainbow", "engine", "fridge", "microwave", "solar panel", "telescope", "compass", "rocket", "bicycle"],
    "country": ["Peru", "Norway", "Kenya", "Japan", "Chile", "Ghana", "Nepal", "Canada", "Egypt", "Mexico"],
    "booking": ["taxi", "hotel room", "haircut", "cinema ticket", "train seat", "massage", "dentist appointment"],
    "when": ["tonight", "friday", "tomorrow at noon", "next week", "7am", "the weekend"],
    "food": ["sushi", "burgers", "tacos", "noodles", "a cake", "sandwiches"],
    "activity": ["knit", "swim", "learn guitar", "cook rice", "meditate", "save money", "sleep better",
                 "water the plants", "call my mum"],
    "music": ["some jazz", "my playlist", "relaxing music", "the radio"],
}
_GREET_HEADS = ["hi", "hello", "hey", "hiya", "howdy", "greetings", "good morning", "good evening",
                "good afternoon", "morning", "evening", "hey hey", "hi hi", "yo", "ahoy"]
_GREET_TAILS = ["", "", "", " there", " to you", " everyone", " friend", "!", " :)", " bot", " all", " again"]
_THANKS_HEADS = ["", "", "great, ", "perfect, ", "lovely, ", "awesome, ", "super, ", "ok ", "nice, ", "cool, ",
                 "wonderful, ", "excellent, "]
_THANKS_CORE = ["thanks", "thank you", "cheers", "many thanks", "thanks so much", "appreciate it",
                "thanks a bunch", "much obliged", "thank you so much", "you're a star", "that helps", "grateful"]


def random_ood(rng: random.Random) -> str:
    """An invented out-of-domain request (training only)."""
    pattern = rng.choice(_OOD_PATTERNS)
    slots = {k: rng.choice(v) for k, v in _OOD_FILL.items()}
    slots.update(ask=rng.choice(_OOD_ASK), thing=rng.choice(_OOD_THING), topic=rng.choice(_OOD_TOPIC),
                 n=str(rng.randint(2, 12)), a=str(rng.randint(2, 99)), b=str(rng.randint(2, 99)))
    return pattern.format(**slots)


def random_social(rng: random.Random, kind: str) -> str:
    """An invented greeting or thanks (training only)."""
    if kind == "greet":
        return rng.choice(_GREET_HEADS) + rng.choice(_GREET_TAILS)
    return rng.choice(_THANKS_HEADS) + rng.choice(_THANKS_CORE) + rng.choice(["", "", "!", " :)", "."])


OUT_OF_DOMAIN_DEV = ["who painted the mona lisa?", "give me a haiku about autumn", "how do volcanoes form",
                     "what's the best programming language", "convert 10 miles to km", "reserve a table for two"]

REPLY_GREET = ["Hello! I can help with orders, customer accounts, stock, weather, callbacks, server "
               "diagnostics and support tickets. What do you need?",
               "Hi! How can I help you today?", "Hello! What can I do for you?"]
REPLY_THANKS = ["You're welcome! Anything else I can help with?", "Glad I could help!", "You're welcome."]
REPLY_BYE = ["Goodbye, have a great day!", "Bye! Come back any time."]
REPLY_SMALLTALK = ["I'm the workbook's support assistant. I can look up orders and customers, check stock and "
                   "weather, schedule callbacks, run diagnostics, open tickets, compute circle areas, tell the "
                   "time or hand you to a human."]
REPLY_OOD = ["Sorry, I can't help with that. I can look up orders and customers, check stock and weather, "
             "schedule callbacks, run diagnostics, open tickets, compute circle areas, tell the time or hand "
             "you to a human.",
             "That is outside what I can do. I handle orders, customers, stock, weather, callbacks, "
             "diagnostics, tickets, circle areas and the time."]
REPLY_NO_TOOL = ["I don't have a tool for that in this conversation, so I can't look it up.",
                 "I can't do that here: the tool for it is not available in this conversation."]

OPENERS = ["", "", "", "", "hi, ", "hello, ", "hey, ", "please ", "excuse me, ", "quick question: ",
           "good morning. ", "hi there! ", "hey! ", "ok ", "so ", "um, ", "sorry to bother you, ", "yo "]
CLOSERS = ["", "", "", "", "", " please", " thanks", " thank you", "?", "!", " asap", " thx", ".",
           " :)", " please and thanks", " if you can"]
SYSTEM_PROMPTS = ["You are a helpful customer service assistant.", "You are a retail kiosk assistant. Be brief.",
                  "You are an IT support agent.", "You are a scheduling assistant.",
                  "Answer politely and use the tools when needed.", "You are Edge, a support bot running locally.",
                  "Keep answers short."]


# ----------------------------------------------------------------------------------------------- sampling
@dataclass
class Values:
    """Slot values drawn for one request."""

    slots: dict[str, str]
    arguments: dict[str, Any]


class DialogueSampler:
    """Draws dialogues for `split` ("train" or "dev") from a seeded random generator."""

    def __init__(self, split: str = "train", seed: int = 123, copy_words: list[str] | None = None,
                 copy_share: float = 0.0) -> None:
        """`copy_words` (see `copy_pieces`): in training, `copy_share` of free texts and city names are made
        of them, so that every piece of the vocabulary is copied from a request into an argument."""
        if split not in ("train", "dev"):
            raise ValueError(f"split must be 'train' or 'dev', not {split!r}")
        if copy_share and not copy_words:
            raise ValueError("copy_share needs copy_words: pass copy_pieces(tokenizer)")
        self.split = split
        self.copy_words = copy_words or []
        self.copy_share = copy_share if split == "train" else 0.0
        self.rng = random.Random(seed if split == "train" else seed + 10_000)
        self.tools_all = openai_tools()
        dev_rng = random.Random(987654)  # the dev id pools are fixed, whatever the seed
        self.dev_ids = {self._digits(dev_rng, dev_rng.randint(3, 8)) for _ in range(400)}
        self.dev_cids = {f"C-{self._digits(dev_rng, dev_rng.randint(4, 6))}" for _ in range(200)}
        self.dev_skus = {"SKU-" + self._sku_body(dev_rng) for _ in range(200)}
        self.dev_srvs = {f"srv-{self._digits(dev_rng, dev_rng.randint(1, 4))}" for _ in range(120)}

    # values ------------------------------------------------------------------------------------------
    @staticmethod
    def _digits(rng: random.Random, n: int) -> str:
        return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))

    @staticmethod
    def _sku_body(rng: random.Random) -> str:
        n = rng.randint(3, 6)
        pool = rng.choice([string.ascii_uppercase, string.ascii_uppercase + string.digits, string.digits + "ABC"])
        return "".join(rng.choice(pool) for _ in range(n))

    def _fresh(self, make: Callable[[], str], dev_pool: set[str]) -> str:
        if self.split == "dev":
            return self.rng.choice(sorted(dev_pool))
        while True:
            v = make()
            if v not in dev_pool:
                return v

    def _fresh_text(self, make: Callable[[random.Random], str]) -> str:
        """Training free text that never equals a held-out one."""
        if self.copy_share and self.rng.random() < self.copy_share:
            make = lambda rng: piece_text(rng, self.copy_words)  # noqa: E731
        while True:
            v = make(self.rng)
            if v.casefold() not in _DEV_TEXTS:
                return v

    def order_id(self) -> str:
        return self._fresh(lambda: self._digits(self.rng, self.rng.randint(3, 8)), self.dev_ids)

    def customer_id(self) -> str:
        return self._fresh(lambda: f"C-{self._digits(self.rng, self.rng.randint(4, 6))}", self.dev_cids)

    def sku(self) -> str:
        return self._fresh(lambda: "SKU-" + self._sku_body(self.rng), self.dev_skus)

    def srv(self) -> str:
        return self._fresh(lambda: f"srv-{self._digits(self.rng, self.rng.randint(1, 4))}", self.dev_srvs)

    def city(self) -> str:
        if self.split == "dev":
            c = self.rng.choice(CITIES_DEV)
        else:
            c = self.rng.choice(CITIES_TRAIN) if self.rng.random() < 0.35 else random_city(self.rng)
            if self.copy_share and self.rng.random() < self.copy_share:
                c = piece_text(self.rng, self.copy_words, 1, 2).title()
            while c.casefold() in _DEV_CITIES:  # an invented name can hit a held-out one (Niš: 8 per million)
                c = random_city(self.rng)
        r = self.rng.random()
        if r < 0.12:
            c = c.lower()
        elif r < 0.14:
            c = c.upper()
        return c

    def clock(self) -> tuple[str, str]:
        """(as the user writes it, as HH:MM)."""
        rng = self.rng
        h, m = rng.randint(0, 23), rng.choice([0, 0, 0, 15, 30, 30, 45, rng.randint(0, 59)])
        canonical = f"{h:02d}:{m:02d}"
        h12 = h % 12 or 12
        ap = "am" if h < 12 else "pm"
        r = rng.random()
        if r < 0.4:
            said = canonical if rng.random() < 0.7 else f"{h}:{m:02d}"
        elif r < 0.65:
            sep = rng.choice(["", " "])
            said = f"{h12}:{m:02d}{sep}{rng.choice([ap, ap.upper()])}"
        elif r < 0.85 and m == 0:
            said = f"{h12}{rng.choice(['', ' '])}{rng.choice([ap, ap.upper()])}"
        elif r < 0.92:
            said = f"{h}h{m:02d}"
        elif h == 12 and m == 0:
            said = "noon"
        else:
            said = canonical
        return said, canonical

    def radius(self) -> tuple[str, float | int]:
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            v: float | int = rng.randint(1, 100)
        elif r < 0.9:
            v = round(rng.uniform(0.1, 50), rng.choice([1, 2]))
            if v == int(v):
                v = int(v)
        else:
            v = rng.randint(100, 5000)
        return str(v), v

    def order_ref(self, oid: str) -> str:
        return self.rng.choice(["{x}", "{x}", "#{x}", "#{x}", "{x}", "no. {x}", "number {x}", "#{x}"]).format(x=oid)

    def pick(self, pool_train: list[str], pool_dev: list[str]) -> str:
        return self.rng.choice(pool_dev if self.split == "dev" else pool_train)

    def values(self, tool: str) -> Values:
        rng = self.rng
        if tool == "lookup_order":
            oid = self.order_id()
            return Values({"oid": self.order_ref(oid)}, {"order_id": oid})
        if tool == "lookup_customer":
            cid = self.customer_id()
            said = cid if rng.random() < 0.85 else cid.lower()
            return Values({"cid": said}, {"customer_id": said})
        if tool == "check_inventory":
            sku = self.sku()
            said = sku if rng.random() < 0.85 else sku.lower()
            return Values({"sku": said}, {"product_sku": said})
        if tool == "get_weather":
            c = self.city()
            return Values({"city": c}, {"city": c})
        if tool == "schedule_callback":
            cid = self.customer_id()
            said, canon = self.clock()
            return Values({"cid": cid, "time": said}, {"customer_id": cid, "preferred_time": canon})
        if tool == "run_diagnostics":
            s = self.srv()
            return Values({"srv": s}, {"system_id": s})
        if tool == "create_ticket":
            issue = self.pick(ISSUES, ISSUES_DEV) if self.split == "dev" else self._fresh_text(random_issue)
            if rng.random() < 0.15:
                issue = issue.lower()
            return Values({"issue": issue}, {"issue": issue})
        if tool == "calculate_circle_area":
            said, v = self.radius()
            return Values({"r": said}, {"radius": v})
        if tool == "get_current_time":
            return Values({}, {})
        if tool == "escalate_to_human":
            cid = self.customer_id()
            reason = self.pick(REASONS, REASONS_DEV) if self.split == "dev" else self._fresh_text(random_reason)
            return Values({"cid": cid, "reason": reason},
                          {"customer_id": cid, "reason": None})
        raise KeyError(tool)

    # text --------------------------------------------------------------------------------------------
    def _typo(self, word: str) -> str:
        rng = self.rng
        if len(word) < 4 or not word.isalpha():
            return word
        i = rng.randint(1, len(word) - 2)
        op = rng.random()
        if op < 0.35:
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if op < 0.6:
            return word[:i] + word[i + 1:]
        if op < 0.8:
            return word[:i] + word[i] + word[i:]
        return word[:i] + rng.choice("aeiourstnl") + word[i + 1:]

    def _style(self, literal: str, lower: bool, upper: bool, typos: float) -> str:
        words = re.split(r"(\s+)", literal)
        out = []
        for w in words:
            if w.strip() and self.rng.random() < typos:
                w = self._typo(w)
            out.append(w)
        s = "".join(out)
        if upper:
            return s.upper()
        if lower:
            return s.lower()
        return s

    def fill(self, template: str, slots: dict[str, str], wrap: bool = True, urgent_ok: bool = True) -> str:
        """Fill a template's slots; style (case, typos, openers) touches only the literal text.

        `urgent_ok=False` (a ticket that is not high priority) turns the closer " asap" into none, so no
        request carries an urgency word that contradicts its label."""
        rng = self.rng
        if wrap:
            opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
            template = opener + template + ("" if closer == " asap" and not urgent_ok else closer)
            if rng.random() < 0.5:
                template = template[0].upper() + template[1:] if template else template
        lower = rng.random() < 0.25
        upper = rng.random() < 0.03
        typos = rng.choice([0.0, 0.0, 0.0, 0.05, 0.12])
        parts = re.split(r"(\{[a-z]+\})", template)
        out = []
        for p in parts:
            if re.fullmatch(r"\{[a-z]+\}", p):
                out.append(slots[p[1:-1]])
            else:
                out.append(self._style(p, lower, upper, typos))
        text = "".join(out)
        return re.sub(r"\s+", " ", text).strip() or template

    def paraphrase(self, template: str, p: float = 0.6) -> str:
        """Swap listed words of a template's literal text for neighbours (slots are kept)."""
        def swap(m: re.Match[str]) -> str:
            w = m.group(0)
            alts = SYNONYMS.get(w.lower())
            return self.rng.choice(alts) if alts and self.rng.random() < p else w
        parts = re.split(r"(\{[a-z]+\})", template)
        return "".join(p_ if p_.startswith("{") else re.sub(r"[A-Za-z]+", swap, p_) for p_ in parts)

    def request(self, tool: str) -> tuple[str, dict[str, Any]]:
        """A user request for `tool` and the expected arguments."""
        v = self.values(tool)
        if self.split == "train" and self.rng.random() < BANK_SHARE:
            tmpl = self.rng.choice(BANK_REQUESTS[tool])
        elif self.split == "train" and tool in CORES and self.rng.random() < 0.3:
            tmpl = self.rng.choice(FRAMES).format(q=self.rng.choice(CORES[tool]))
        else:
            tmpl = self.rng.choice(T[tool][self.split])
        if self.split == "train" and self.rng.random() < 0.35:
            tmpl = self.paraphrase(tmpl)
        if tool == "create_ticket" and self.split == "train" and self.rng.random() < 0.5:
            prio, affix = self.rng.choice(PRIORITY_FORMS)  # training only: more wordings and places
            tmpl = affix.replace("{t}", tmpl)
            v.arguments["priority"] = prio
        elif tool == "create_ticket":
            prio, words = self.rng.choice([("medium", ""), ("medium", ""), ("high", "urgent: "),
                                           ("high", "high priority: "), ("high", "ASAP - "),
                                           ("low", "low priority, "), ("low", "not urgent: "),
                                           ("medium", "medium priority: "), ("high", "critical! "),
                                           ("low", "no rush, ")])
            tmpl = words + tmpl if self.rng.random() < 0.7 else tmpl + (
                {"high": " - this is urgent", "low": " (low priority)", "medium": ""}[prio])
            v.arguments["priority"] = prio
        if tool == "escalate_to_human":
            v.arguments["reason"] = v.slots["reason"]
        # training only: the shipped dev set was generated before this rule and stays byte for byte
        calm_ticket = self.split == "train" and tool == "create_ticket" and v.arguments["priority"] != "high"
        text = self.fill(tmpl, v.slots, urgent_ok=not calm_ticket)
        return text, v.arguments


# ----------------------------------------------------------------------------------------------- results
def synth_result(tool: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A tool result with the same keys as the real `Shop` tool would return."""
    if tool in ("lookup_order", "lookup_customer", "check_inventory", "run_diagnostics") and rng.random() < 0.1:
        key = {"lookup_order": "order", "lookup_customer": "customer", "check_inventory": "product",
               "run_diagnostics": "system"}[tool]
        return {"error": f"{key} {next(iter(args.values()))} not found"}
    if tool == "lookup_order":
        return {"order_id": args["order_id"], "status": rng.choice(ORDER_STATUSES),
                "eta": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "total": round(rng.uniform(5, 900), 2)}
    if tool == "lookup_customer":
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return {"customer_id": args["customer_id"], "name": f"{first} {last}", "tier": rng.choice(TIERS),
                "email": f"{first}.{last}@example.com".lower()}
    if tool == "check_inventory":
        return {"product_sku": args["product_sku"].upper(), "product": rng.choice(PRODUCTS),
                "in_stock": rng.choice([0, 0, 2, 5, 12, 40, 150, 999, rng.randint(1, 500)]),
                "warehouse": rng.choice(WAREHOUSES)}
    if tool == "get_weather":
        return {"city": args["city"], "condition": rng.choice(CONDITIONS), "temp_c": rng.randint(-15, 40),
                "source": "simulated"}
    if tool == "schedule_callback":
        return {"callback_id": f"CB-{rng.randint(1001, 9999)}", "customer_id": args["customer_id"],
                "preferred_time": args["preferred_time"], "status": "scheduled"}
    if tool == "run_diagnostics":
        return {"system_id": args["system_id"], "status": rng.choice(("healthy", "degraded", "critical")),
                "cpu_pct": rng.randint(1, 99), "disk_free_pct": rng.randint(1, 95)}
    if tool == "create_ticket":
        return {"ticket_id": f"T-{rng.randint(1001, 9999)}", "priority": args["priority"], "status": "open"}
    if tool == "calculate_circle_area":
        return {"radius": args["radius"], "area": round(math.pi * float(args["radius"]) ** 2, 3)}
    if tool == "get_current_time":
        return {"time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "timezone": "UTC"}
    if tool == "escalate_to_human":
        return {"case_id": f"E-{rng.randint(2001, 9999)}", "customer_id": args["customer_id"], "status": "queued"}
    raise KeyError(tool)


def answer_for(tool: str, result: dict[str, Any], rng: random.Random) -> str:
    """The plain-text answer the model gives once a tool result is back; it states the result's facts."""
    if "error" in result:
        return rng.choice(["Sorry, {e}. Could you check it and try again?", "I couldn't find that: {e}.",
                           "The lookup failed: {e}. Please double-check it."]).format(e=result["error"])
    r = result
    choices = {
        "lookup_order": ["Order {order_id} is {status}. Expected delivery: {eta}. Total: {total}.",
                         "Your order {order_id} is {status}, with an expected delivery date of {eta}.",
                         "Order {order_id}: {status}, arriving {eta} (total {total})."],
        "lookup_customer": ["Customer {customer_id} is {name}, {tier} tier, email {email}.",
                            "{customer_id} belongs to {name} ({tier} tier). Email: {email}."],
        "check_inventory": ["{product_sku} ({product}): {in_stock} in stock at the {warehouse} warehouse.",
                            "We have {in_stock} units of {product_sku} ({product}) in {warehouse}."],
        "get_weather": ["In {city} it is {condition} and {temp_c}°C (simulated weather).",
                        "The weather in {city}: {condition}, {temp_c}°C (simulated)."],
        "schedule_callback": ["Done: callback {callback_id} is scheduled for {customer_id} at {preferred_time}.",
                              "I scheduled a callback for {customer_id} at {preferred_time} (ref {callback_id})."],
        "run_diagnostics": ["{system_id} is {status}: CPU at {cpu_pct}%, {disk_free_pct}% disk free.",
                            "Diagnostics for {system_id}: status {status}, CPU {cpu_pct}%, free disk {disk_free_pct}%."],
        "create_ticket": ["I opened ticket {ticket_id} with {priority} priority.",
                          "Ticket {ticket_id} is open ({priority} priority)."],
        "calculate_circle_area": ["A circle with radius {radius} has an area of {area}.",
                                  "The area is {area} (radius {radius})."],
        "get_current_time": ["It is {time} UTC on {date}.", "The current time is {time} UTC, {date}."],
        "escalate_to_human": ["I passed you to a human agent: case {case_id} for {customer_id} is {status}.",
                              "A human will take over. Your case is {case_id} ({status})."],
    }[tool]
    return rng.choice(choices).format(**r)


# ----------------------------------------------------------------------------------------------- dialogues
def _call_message(tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": tool, "arguments": dump_json(args)}}]}


@dataclass
class Dialogue:
    """A training dialogue: messages, the tools offered, and whether Foundry's protocol mode is on."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None


class DialogueGenerator(DialogueSampler):
    """Whole dialogues: tool calls with results and answers, multi-turn chats, no-tool chats."""

    TOOL_WEIGHTS = {"lookup_order": 3, "lookup_customer": 2, "check_inventory": 2, "get_weather": 3,
                    "schedule_callback": 2.5, "run_diagnostics": 2, "create_ticket": 2,
                    "calculate_circle_area": 1.5, "get_current_time": 1, "escalate_to_human": 2}

    def _tool(self) -> str:
        names = list(self.TOOL_WEIGHTS)
        return self.rng.choices(names, weights=[self.TOOL_WEIGHTS[n] for n in names])[0]

    def _text_reply(self, kind: str) -> tuple[str, str]:
        rng = self.rng
        # training only: a compositional phrase, a phrase-bank text or one of the fixed lists
        source = "list"
        if self.split == "train":
            r = rng.random()
            source = "invent" if r < 0.35 else ("bank" if r < 0.35 + BANK_SHARE else "list")
        if source == "bank":
            pool = kind if kind != "ood" or rng.random() < 0.6 else "ood_hard"
            said = rng.choice(BANK_TEXTS[pool])
            reply = {"greet": REPLY_GREET, "thanks": REPLY_THANKS, "bye": REPLY_BYE,
                     "smalltalk": REPLY_SMALLTALK}.get(kind, REPLY_OOD)
            return self.fill(said, {}, wrap=kind == "ood"), rng.choice(reply)
        invent = source == "invent"
        if kind == "greet":
            said = random_social(rng, kind) if invent else self.pick(GREETINGS, GREETINGS_DEV)
            return self.fill(said, {}, wrap=False), rng.choice(REPLY_GREET)
        if kind == "thanks":
            said = random_social(rng, kind) if invent else self.pick(THANKS, THANKS_DEV)
            return self.fill(said, {}, wrap=False), rng.choice(REPLY_THANKS)
        if kind == "bye":
            return self.fill(rng.choice(BYES), {}, wrap=False), rng.choice(REPLY_BYE)
        if kind == "smalltalk":
            return self.fill(rng.choice(SMALLTALK), {}, wrap=False), rng.choice(REPLY_SMALLTALK)
        said = random_ood(rng) if invent else self.pick(OUT_OF_DOMAIN, OUT_OF_DOMAIN_DEV)
        return self.fill(said, {}), rng.choice(REPLY_OOD)

    def _tool_turn(self, msgs: list[dict[str, Any]], tool: str, n: int, frame: str,
                   missing: bool = False) -> None:
        rng = self.rng
        if missing and tool in MISSING:
            asks, prompts, answers = MISSING[tool]
            msgs.append({"role": "user", "content": self.fill(rng.choice(asks), {})})
            msgs.append({"role": "assistant", "content": frame + rng.choice(prompts)})
            v = self.values(tool)
            msgs.append({"role": "user", "content": self.fill(rng.choice(answers), v.slots, wrap=False)})
            args = v.arguments
        else:
            text, args = self.request(tool)
            msgs.append({"role": "user", "content": text})
        call_id = f"call_{n}"
        msgs.append(_call_message(tool, args, call_id))
        result = synth_result(tool, args, rng)
        msgs.append({"role": "tool", "tool_call_id": call_id, "content": dump_json(result)})
        msgs.append({"role": "assistant", "content": frame + answer_for(tool, result, rng)})

    def dialogue(self) -> Dialogue:
        """One training dialogue."""
        rng = self.rng
        msgs: list[dict[str, Any]] = []
        mode = rng.random()
        tools: list[dict[str, Any]] | None = self.tools_all
        frame = ""
        if mode < 0.15:  # Foundry Local's protocol mode: its system message, replies framed with MESSAGE
            msgs.append({"role": "system", "content": FOUNDRY_PROTOCOL_PREFIX + " ..."})
            frame = MESSAGE_FRAME
            if rng.random() < 0.5:
                tools = None
        elif mode < 0.2:
            tools = None  # no tools at all: text only
        elif rng.random() < 0.2:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        if tools is None and not frame:
            kind = rng.choice(["greet", "ood", "request", "request", "thanks"])
            if kind == "request":
                text, _ = self.request(self._tool())
                msgs.append({"role": "user", "content": text})
                msgs.append({"role": "assistant", "content": rng.choice(REPLY_NO_TOOL)})
            else:
                u, a = self._text_reply(kind)
                msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
            return Dialogue(msgs, None)
        if tools is self.tools_all and rng.random() < 0.08:
            shuffled = list(tools)
            rng.shuffle(shuffled)
            tools = shuffled
        shape = rng.random()
        n_turns = 1 if shape < 0.55 else (2 if shape < 0.9 else 3)
        for turn in range(n_turns):
            r = rng.random()
            if r < 0.72:
                self._tool_turn(msgs, self._tool(), turn, frame, missing=rng.random() < 0.07)
            else:
                kind = rng.choice(["greet", "thanks", "ood", "ood", "smalltalk", "bye"] if turn else
                                  ["greet", "ood", "ood", "smalltalk"])
                u, a = self._text_reply(kind)
                msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": frame + a}]
        if frame and rng.random() < 0.5:  # history sent back without the frame
            for m in msgs[:-1]:
                if m["role"] == "assistant" and m.get("content", "").startswith(MESSAGE_FRAME):
                    m["content"] = m["content"][len(MESSAGE_FRAME):]
        return Dialogue(msgs, tools)

    def __iter__(self) -> Iterator[Dialogue]:
        while True:
            yield self.dialogue()


# ----------------------------------------------------------------------------------------------- eval sets
DEV_SEED = 123  # the shipped dev set is eval_cases(300, DEV_SEED); any n gives a prefix of it


def eval_cases(n: int = 300, seed: int = DEV_SEED, split: str = "dev") -> list[dict[str, Any]]:
    """Evaluation cases in the `eval-toolcalls` format, drawn from held-out phrasings and values."""
    g = DialogueGenerator(split=split, seed=seed)
    rng = g.rng
    cases = []
    for i in range(n):
        r = rng.random()
        msgs: list[dict[str, Any]] = []
        if r < 0.12:
            u, _ = g._text_reply(rng.choice(["greet", "thanks", "ood", "ood", "ood"]))
            msgs.append({"role": "user", "content": u})
            expected = None
        elif r < 0.22:  # second request in the same chat
            first = g._tool()
            g._tool_turn(msgs, first, 0, "")
            tool = g._tool()
            text, args = g.request(tool)
            msgs.append({"role": "user", "content": text})
            expected = {"name": tool, "arguments": args}
        else:
            tool = g._tool()
            text, args = g.request(tool)
            msgs.append({"role": "user", "content": text})
            expected = {"name": tool, "arguments": args}
        cases.append({"id": f"{split}-{i:04d}", "messages": msgs, "expected": expected})
    return cases


def template_regex(template: str, fills: dict[str, list[str]] | None = None) -> re.Pattern[str]:
    """Every text the generator can write from `template`, as a regex: slots are wildcards (or one of
    their `fills`), wrapped in the generator's optional openers and closers, any casing. Tests and the
    phrase bank's build use it to prove that no held-out text is a form training writes."""
    parts = re.split(r"(\{[a-z]+\})", template)
    body = "".join(
        ("(?:" + "|".join(re.escape(v) for v in fills[p[1:-1]]) + ")" if fills and p[1:-1] in fills else ".+?")
        if re.fullmatch(r"\{[a-z]+\}", p) else re.escape(p) for p in parts)
    op = "|".join(re.escape(o) for o in OPENERS if o)
    cl = "|".join(re.escape(c) for c in CLOSERS if c)
    return re.compile(rf"(?:{op})?{body}(?:{cl})?", re.I)


def write_jsonl(rows: list[dict[str, Any]], path: str) -> None:
    """Write rows as JSON lines (UTF-8, one object a line)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


__all__ = ["DialogueGenerator", "DialogueSampler", "Dialogue", "eval_cases", "synth_result", "answer_for",
           "template_regex", "write_jsonl", "TOOL_NAMES"]
