#!/usr/bin/env python3
"""Writes train.tsv and test.tsv: short movie-review sentences labelled 1 (positive) / 0 (negative).

Every sentence is made here from the word lists and templates below (no data from elsewhere).
Some adjectives and templates appear only in the test split, so the test accuracy measures how
well the model carries what it learned to words and phrasings it was not trained on.

    python3 examples/sentiment/make_data.py      # deterministic (seeded)
"""
import os
import random

SUBJECTS = ["the movie", "this film", "the story", "the acting", "the soundtrack", "the plot",
            "the ending", "the cast", "the dialogue", "the camera work", "the pacing", "the script",
            "the lead actor", "the direction", "the final scene", "the sequel", "the animation",
            "the screenplay", "the humor", "the characters", "this documentary", "the premise",
            "the second half", "the opening", "the villain", "the score", "the editing"]
POS = ["wonderful", "brilliant", "delightful", "moving", "charming", "gripping", "clever",
       "beautiful", "funny", "touching", "superb", "fresh", "thoughtful", "excellent", "lovely",
       "heartfelt", "stunning", "engaging", "warm", "sharp", "inventive", "joyful", "powerful",
       "memorable", "elegant", "witty", "uplifting", "satisfying"]
NEG = ["dull", "boring", "clumsy", "awful", "tedious", "predictable", "lifeless", "messy",
       "bland", "shallow", "forgettable", "painful", "silly", "flat", "tiresome", "weak",
       "terrible", "confusing", "lazy", "stale", "pointless", "dreary", "hollow", "sloppy",
       "annoying", "disappointing", "cheap", "overlong"]
# held out of training: only the test split uses them
POS_TEST = ["magnificent", "enchanting", "captivating", "exhilarating", "marvelous", "sublime"]
NEG_TEST = ["atrocious", "insipid", "grating", "lackluster", "tepid", "abysmal"]
INTENS = ["", "", "", "really ", "very ", "truly ", "quite ", "remarkably ", "so ", "utterly "]
VERBS_POS = ["loved", "enjoyed", "adored", "admired", "treasured", "savored"]
VERBS_NEG = ["hated", "disliked", "regretted", "resented", "endured", "sat through"]
PEOPLE = ["i", "we", "my friends", "the audience", "my family", "everyone i know", "my sister"]
EXTRA_POS = ["a joy from start to finish", "worth every minute", "a small masterpiece",
             "the best thing i have seen this year", "a pleasure to watch", "a real treat",
             "full of life", "hard not to love"]
EXTRA_NEG = ["a waste of time", "a chore to sit through", "a total mess",
             "the worst thing i have seen this year", "hard to care about", "an utter letdown",
             "two hours i will never get back", "a slog"]
EXTRA_POS_TEST = ["an absolute gem", "something i would gladly watch again"]
EXTRA_NEG_TEST = ["a complete disaster", "something i want to forget"]


def a(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def adj_phrase(r, words):
    return r.choice(INTENS) + r.choice(words)


def sentence(r, label, pos, neg, extra_pos, extra_neg, test):
    good, bad = (pos, neg) if label == 1 else (neg, pos)
    extra = extra_pos if label == 1 else extra_neg
    verbs = VERBS_POS if label == 1 else VERBS_NEG
    s = r.choice(SUBJECTS)
    s2 = r.choice([x for x in SUBJECTS if x != s])
    templates = [
        lambda: f"{s} was {adj_phrase(r, good)} .",
        lambda: f"{s} is {adj_phrase(r, good)} and {r.choice(good)} .",
        lambda: f"{r.choice(PEOPLE)} {r.choice(verbs)} {s} .",
        lambda: f"{s} felt {adj_phrase(r, good)} from beginning to end .",
        lambda: f"what {a(r.choice(good))} film .",
        lambda: f"{s} is {r.choice(extra)} .",
        lambda: f"{s} was {r.choice(bad)} at times , but {s2} is {adj_phrase(r, good)} .",
        lambda: f"{s} was not {r.choice(bad)} at all ; it was {r.choice(good)} .",
        lambda: f"honestly , {s} is {r.choice(extra)} .",
        lambda: f"{a(r.choice(good))} , {r.choice(good)} piece of work .",
    ]
    if test:  # phrasings the training split never uses
        templates += [
            lambda: f"i found {s} {adj_phrase(r, good)} , and so did {r.choice(PEOPLE[1:])} .",
            lambda: f"even though {s2} is {r.choice(bad)} , {s} is {adj_phrase(r, good)} .",
            lambda: f"{s} ? {r.choice(good)} .",
        ]
    return r.choice(templates)()


def make(r, n, test):
    pos = POS + (POS_TEST if test else [])
    neg = NEG + (NEG_TEST if test else [])
    ep = EXTRA_POS + (EXTRA_POS_TEST if test else [])
    en = EXTRA_NEG + (EXTRA_NEG_TEST if test else [])
    rows, seen = [], set()
    while len(rows) < n:
        label = len(rows) % 2
        s = sentence(r, label, pos, neg, ep, en, test)
        if test and not any(w in s for w in POS_TEST + NEG_TEST + EXTRA_POS_TEST + EXTRA_NEG_TEST) \
                and r.random() < 0.5:
            continue  # lean the test split towards what training did not show
        if s not in seen:
            seen.add(s)
            rows.append((s, label))
    r.shuffle(rows)
    return rows, seen


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for s, l in rows:
            f.write(f"{s}\t{l}\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    r = random.Random(20261126)
    train, seen = make(r, 480, test=False)
    test = []
    tr = random.Random(7)
    while len(test) < 200:
        rows, _ = make(tr, 200, test=True)
        test = [x for x in rows if x[0] not in seen][:200]
    write(os.path.join(here, "train.tsv"), train)
    write(os.path.join(here, "test.tsv"), test)
    print(f"train.tsv: {len(train)} rows, test.tsv: {len(test)} rows")


if __name__ == "__main__":
    main()
