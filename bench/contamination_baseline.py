#!/usr/bin/env python3
"""Plain-Python n-gram contamination scanner of the reference's kind: the baseline `ptb scan` is
measured against (bench/contaminationScanEndToEnd.ts).

The reference's judges get an n-gram contamination checker described as "decon SIMPLE"
(aisa-group/PostTrainBench src/judges/README.md at 24b9f622, `judge_tools/contamination_check.py`;
the algorithm is allenai/decon's doc/simple.md and config/default.yaml at e1bcb80c). This is an
independent plain-Python version of that algorithm, standard library only, written to be as fast
as idiomatic Python allows:

- text cleaning as decon's defaults: lowercase, its punctuation characters become spaces, words
  split on whitespace (decon's default tokenizer is cl100k BPE, which needs a download; words are
  the offline choice and faster in Python);
- index: every 5-gram (ngram_size 5) of each item's question and answer -> the items holding it;
- scan: each JSON line's `text`; one 5-gram every 10 tokens is looked up (sample_every_m_tokens
  10); a hit expands left and right over every position while the surviving items keep matching,
  dropping an item after 11 consecutive misses (question_max_consecutive_misses);
- score: share of the item's distinct 5-grams found in the cluster; >= 0.8 reports the item
  (contamination_score_threshold; short texts need all of theirs, perfect_match_decay_start 20).

    python3 bench/contamination_baseline.py ITEMS.jsonl CORPUS.jsonl [--content-key text]
        [--sample-every 10]   (1 = look up every n-gram: no sampling)

Prints one JSON line per finding and a summary line, like `ptb scan`.
"""
import json
import sys
import time

NGRAM = 5
SAMPLE_EVERY = 10
MAX_MISSES = 11
THRESHOLD = 0.8
PERFECT_BELOW = 20
PUNCTUATION = "!’\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~”“‘’—"
CLEAN = str.maketrans({c: " " for c in PUNCTUATION})


def words(text):
    return text.lower().translate(CLEAN).split()


def build_index(items_path):
    index = {}
    sizes = []
    ids = []
    with open(items_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            item = len(ids)
            ids.append(str(row.get("id", item)))
            toks = words(f"{row.get('question', '')} {row.get('answer', '')}")
            grams = set(zip(*(toks[k:] for k in range(NGRAM))))
            sizes.append(len(grams))
            for g in grams:
                index.setdefault(g, set()).add(item)
    return index, sizes, ids


def expand(toks, at, docs, index):
    """Matched n-grams per surviving item around a hit at `at`, walking both ways; and the last
    position the walk to the right reached (the scan resumes after it)."""
    matched = {d: {tuple(toks[at : at + NGRAM])} for d in docs}
    last = len(toks) - NGRAM
    right = at
    for step in (-1, 1):
        alive = {d: 0 for d in docs}
        i = at + step
        while alive and 0 <= i <= last:
            g = tuple(toks[i : i + NGRAM])
            hit = index.get(g, ())
            for d in list(alive):
                if d in hit:
                    alive[d] = 0
                    matched[d].add(g)
                else:
                    alive[d] += 1
                    if alive[d] > MAX_MISSES:
                        del alive[d]
            if step > 0:
                right = i
            i += step
    return matched, right


def scan(corpus_path, content_key, index, sizes, ids):
    findings = 0
    nbytes = 0
    with open(corpus_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            nbytes += len(line)
            try:
                text = json.loads(line)[content_key]
            except (ValueError, KeyError, TypeError):
                continue
            toks = words(text)
            reported = set()
            i = 0
            end = len(toks) - NGRAM + 1
            while i < end:
                docs = index.get(tuple(toks[i : i + NGRAM]))
                if not docs or not docs - reported:
                    i += SAMPLE_EVERY
                    continue
                matched, right = expand(toks, i, docs - reported, index)
                for d, grams in matched.items():
                    need = 1.0 if sizes[d] + NGRAM - 1 <= PERFECT_BELOW else THRESHOLD
                    score = len(grams) / max(1, sizes[d])
                    if score >= need:
                        reported.add(d)
                        findings += 1
                        print(json.dumps({"line": lineno, "item": ids[d], "score": round(score, 3)}))
                i = max(i + SAMPLE_EVERY, right + 1)
    return findings, nbytes


def main():
    args = sys.argv[1:]
    global SAMPLE_EVERY
    key = "text"
    if "--content-key" in args:
        k = args.index("--content-key")
        key = args[k + 1]
        del args[k : k + 2]
    if "--sample-every" in args:
        k = args.index("--sample-every")
        SAMPLE_EVERY = int(args[k + 1])
        del args[k : k + 2]
    items_path, corpus_path = args
    started = time.perf_counter()
    index, sizes, ids = build_index(items_path)
    findings, nbytes = scan(corpus_path, key, index, sizes, ids)
    seconds = time.perf_counter() - started
    print(json.dumps({"summary": {"items": len(ids), "findings": findings, "bytes": nbytes,
                                  "seconds": round(seconds, 3), "mbPerSecond": round(nbytes / 1e6 / seconds, 1)}}))


if __name__ == "__main__":
    main()
