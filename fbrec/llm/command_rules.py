"""The offline command parser's rules: cue words and their scope, a small synonym lexicon, years, popularity and
"like <title>" references. `parse_command_offline` in fbrec.llm.commands applies them clause by clause.

Cues (a clause is split at , ; . ! ? but though although however, and at "and" before a cue):
    exclude  no, not, nothing, without, except, avoid, skip, drop, never, don't ... ("anything but", "other than",
             "not in the mood for", "enough with", "sick of", "no more" read as these) -- scope: the words after it,
             to the clause's end; later positive words do not undo it ("I don't want romance")
    fewer    fewer, less, reduce, "a break from", "not so / not too / not very"
    include  only, just, exclusively (also after its value: "children's movies only")
    more     more, like, love, want, prefer ... and the default
Lexicon: everyday words that name a catalogue value (funny -> comedy, scary -> horror, kids -> children's, ...); an
entry applies only where the catalogue's own vocabulary has its target, so it never invents values.
Titles: after "like", "similar to", "in the vein of" ... the longest run of words that is a catalogue title becomes
similar_to ("title (year)") and its words never become attributes ("more like Star Wars" is not the War genre).
Years: explicit years win over relative words. "from|in 1994" = that year; "between 1980 and 1985" / "1980-1985" a
range; "the 40s", "the forties", "a 1960s", "early|mid|late 80s" a decade or its part; "after|before|since|until|
older than|later than Y", negated ("nothing before 1990" = from 1990, "no later than 1975" = to 1975); only without an
explicit year do "recent|new|newer|latest" (the catalogue's last ten years) and "not too old" (its last twenty) apply.
"""

from __future__ import annotations

import re

NEGATE = {"no", "not", "nothing", "without", "except", "excluding", "avoid", "exclude", "hate", "never", "stop",
          "don't", "dont", "none", "skip", "drop", "ditch", "lose", "nix"}
SOFTEN = {"so", "too", "very", "that"}          # "not so violent" -> fewer, not none
ONLY = {"only", "just", "exclusively"}
FEWER = {"fewer", "less", "reduce", "cut"}
MORE = {"more", "like", "love", "want", "prefer", "into", "keep", "enjoy"}
POPULAR = {"popular", "mainstream", "hits", "blockbusters", "blockbuster", "bestsellers", "best-sellers",
           "well-known", "famous", "trending"}
NICHE = {"obscure", "niche", "lesser-known", "indie", "unknown", "underrated", "rare", "overlooked"}
POPULAR_PHRASES = ("everyone is watching", "everyone's watching", "everybody is watching", "everyone watches",
                   "what everyone")
NICHE_PHRASES = ("hidden gem", "nobody has seen", "no one has seen", "nobody knows", "off the beaten")
STOP = {"the", "a", "an", "of", "and", "or", "some", "any", "please", "me", "show", "give", "i", "want", "like",
        "love", "more", "films", "film", "movies", "movie", "items", "products", "stuff", "things", "with", "from",
        "in", "for", "to", "by", "is", "are", "be", "but", "that", "this", "recommend", "prefer", "into", "s",
        "one", "ones", "something", "anything", "good", "great", "my", "what", "else", "would", "if", "so", "too"}

# phrase -> the phrase that replaces it before cues are read (the whole command, lower case)
CUE_PHRASES = (("anything but", "except"), ("everything but", "except"), ("all but", "except"),
               ("other than", "except"), ("not in the mood for", "not"), ("a break from", "fewer"),
               ("enough with", "no"), ("enough of", "no"), ("sick of", "no"), ("tired of", "no"),
               ("no more", "no"), ("don't want", "don't"), ("do not want", "don't"), ("but not", ", not"))

# everyday word -> the catalogue word it means (applied only where the catalogue has that word)
LEXICON = {
    "funny": "comedy", "funnier": "comedy", "hilarious": "comedy", "comedic": "comedy", "laugh": "comedy",
    "scary": "horror", "scarier": "horror", "spooky": "horror", "creepy": "horror", "frightening": "horror",
    "terrifying": "horror", "slasher": "horror",
    "kid": "children's", "kids": "children's", "children": "children's", "childrens": "children's",
    "family": "children's", "family-friendly": "children's",
    "animated": "animation", "cartoon": "animation", "anime": "animation",
    "romantic": "romance", "love story": "romance", "love stories": "romance",
    "sci fi": "sci-fi", "scifi": "sci-fi", "science fiction": "sci-fi", "space": "sci-fi", "aliens": "sci-fi",
    "detective": "mystery", "whodunit": "mystery", "whodunnit": "mystery",
    "cowboy": "western",
    "suspense": "thriller", "suspenseful": "thriller", "tense": "thriller",
    "gangster": "crime", "mob": "crime", "mafia": "crime", "heist": "crime",
    "singing": "musical", "dancing": "musical",
    "epic": "adventure", "adventurous": "adventure",
    "true story": "documentary", "true stories": "documentary",
    "violent": "action", "violence": "action", "explosions": "action",
    "noir": "film-noir",
    "soldiers": "war",
}

SIMILAR_CUES = ("similar to", "in the vein of", "in the style of", "the style of", "along the lines of",
                "reminds me of", "such as", "as good as", "like", "liked", "loved", "enjoyed")
ARTICLES = {"the", "a", "an"}

WORD_DECADES = {"twenties": 2, "thirties": 3, "forties": 4, "fifties": 5, "sixties": 6, "seventies": 7,
                "eighties": 8, "nineties": 9}
PART = {"early": (0, 4), "mid": (3, 6), "late": (5, 9)}
YEAR = r"((?:19|20)\d\d)"
NEGATED = re.compile(r"\b(?:no|not|nothing|never|none)\b")


def title_key(text: str) -> str:
    """A title as words: lower case, punctuation out, a leading or trailing (", The") article dropped."""
    words = re.findall(r"[a-z0-9&]+", re.sub(r"'", "", text.lower()))
    if len(words) > 1 and words[-1] in ARTICLES and re.search(r",\s*(the|a|an)\s*$", text.lower()):
        words = words[:-1]
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def _decade_start(digit: int, century: str | None, years: tuple[int, int] | None) -> int:
    if century:
        return int(f"{century}{digit}0")
    for c in (19, 20):           # the century whose decade the catalogue covers, else the 1900s from the 30s on
        if years and years[0] - 9 <= c * 100 + digit * 10 <= years[1]:
            return c * 100 + digit * 10
    return (19 if digit >= 3 else 20) * 100 + digit * 10


def years_of(clause: str, years: tuple[int, int] | None) -> tuple[int | None, int | None, bool]:
    """(min_year, max_year, explicit) a clause states; each rule blanks what it read so no year is read twice."""
    lo = hi = None
    text = clause

    def take(m: re.Match) -> None:
        nonlocal text
        text = text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]

    for m in list(re.finditer(rf"\b(?:between|from)\s+{YEAR}\s+(?:and|to|until|through)\s+{YEAR}\b|"
                              rf"\b{YEAR}\s*(?:-|to)\s*{YEAR}\b", text)):
        a, b = [int(g) for g in m.groups() if g]
        lo, hi = min(a, b), max(a, b)
        take(m)
    decade = re.compile(r"\b(?:(early|mid|late)[\s-]+)?(?:the\s+)?(?:(19|20)?(\d)0'?s|(" + "|".join(WORD_DECADES)
                        + r"))\b")
    for m in list(decade.finditer(text)):
        part, century, digit, word = m.groups()
        start = _decade_start(int(digit) if digit else WORD_DECADES[word], century, years)
        first, last = PART.get(part, (0, 9))
        lo, hi = start + first, start + last
        take(m)
    for m in list(re.finditer(rf"\b(before|earlier than|older than|prior to|after|later than|newer than|"
                              rf"more recent than|since|until|till|through|up to)\s+{YEAR}\b", text)):
        word, year = m.group(1), int(m.group(2))
        negated = bool(NEGATED.search(text[:m.start()]))
        if word in ("before", "earlier than", "older than", "prior to"):
            lo, hi = (year, hi) if negated else (lo, year - 1)
        elif word in ("after", "later than", "newer than", "more recent than"):
            lo, hi = (lo, year) if negated else (year + 1, hi)
        elif word == "since":
            lo = year
        else:
            hi = year
        take(m)
    for m in list(re.finditer(rf"\b{YEAR}\s+(?:on|onwards|onward|or later|and later|or newer)\b", text)):
        lo = int(m.group(1))
        take(m)
    for m in list(re.finditer(rf"\b{YEAR}\s+(?:or earlier|and earlier|or older)\b", text)):
        hi = int(m.group(1))
        take(m)
    for m in re.finditer(rf"\b{YEAR}\b", text):      # a year on its own: "from 1994", "made in 1977"
        lo = hi = int(m.group(1))
    return lo, hi, lo is not None or hi is not None


def relative_years(text: str, years: tuple[int, int] | None) -> int | None:
    """min_year of a relative phrase ("recent" = the catalogue's last ten years, "not too old" its last twenty)."""
    if not years:
        return None
    if re.search(r"\b(?:not|nothing|none)\s+(?:too|very|that|so)\s+old\b", text):
        return years[1] - 19
    if re.search(r"\b(?:recent|new|newer|latest|newest)\b", text):
        return years[1] - 9
    return None


def popularity_of(clause: str, words: list[str], cues: list[str | None]) -> str | None:
    """'popular' | 'niche' | None; a negated or fewer cue flips it ("nothing mainstream" = niche)."""
    found = None
    for phrases, kind in ((POPULAR_PHRASES, "popular"), (NICHE_PHRASES, "niche")):
        if any(p in clause for p in phrases):
            found = kind
    for w, cue in zip(words, cues, strict=True):
        kind = "popular" if w in POPULAR else "niche" if w in NICHE else None
        if kind:
            flip = cue in ("exclude", "fewer")
            found = ({"popular": "niche", "niche": "popular"}[kind]) if flip else kind
    return found


def cues_of(words: list[str]) -> list[str | None]:
    """Each word's cue: the latest cue before it (exclude is sticky to the clause's end); None where no cue has been
    seen yet."""
    state, out = None, []
    for i, w in enumerate(words):
        if w in NEGATE:
            soft = w == "not" and i + 1 < len(words) and words[i + 1] in SOFTEN
            if not soft:
                state = "exclude"
            elif state != "exclude":
                state = "fewer"
        elif state != "exclude":
            state = "include" if w in ONLY else "fewer" if w in FEWER else "more" if w in MORE else state
        out.append(state)
    return out


def similar_spans(words: list[str], titles: dict[str, list[str]]) -> list[tuple[int, int, list[str]]]:
    """(start, end, catalogue names) of each title named after a similarity cue: the longest run of words that is a
    title (a leading article skipped)."""
    if not titles:
        return []
    text = " ".join(words)
    starts = sorted({len(text[:m.end()].split()) for cue in SIMILAR_CUES
                     for m in re.finditer(rf"(?:^|\s){re.escape(cue)}\s", text + " ")})
    out, taken = [], -1
    for start in starts:                     # the words after each cue, left to right
        if start <= taken:
            continue
        if start < len(words) and words[start] in ARTICLES:
            start += 1
        for end in range(min(len(words), start + 10), start, -1):
            key = title_key(" ".join(words[start:end]))
            if key in titles:
                out.append((start, end, titles[key]))
                taken = end
                break
    return out
