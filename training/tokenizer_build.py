"""CLIP-format BPE tokenizer for the default model, built from the caption vocabulary.

The files have exactly the layout of OpenAI CLIP's tokenizer as transformers saves it, so
cfgserve's C tokenizer (and transformers' CLIPTokenizer) read them unchanged:

* vocab.json: the 256 byte-to-unicode symbols, the same 256 with "</w>", one entry per
  merge (the merged string), then <|startoftext|> and <|endoftext|>; ids in that order.
* merges.txt: "#version: 0.2", then one "a b" line per merge, in rank order.
* tokenizer_config.json / special_tokens_map.json as SD 1.x has them, but with a short
  model_max_length (captions are at most ~14 tokens) so the text encoder is cheap.

Merges are learned with the classic BPE rule (repeatedly merge the most frequent adjacent
pair, ties broken by the pair's text) over the caption words until every caption word is
one token. Any other text still tokenizes, into byte-level pieces.

encode() here is CLIP's algorithm restricted to lower-case ASCII text, which is all the
trainer feeds it; the C tokenizer implements the full one.
"""
import json
import os
import re

import dataset

MODEL_MAX_LENGTH = 20
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_merges(word_counts):
    """BPE merges (list of (a, b)) until every word is a single symbol."""
    enc = bytes_to_unicode()
    words = {}
    for w, c in word_counts.items():
        chars = [enc[b] for b in w.encode("utf-8")]
        chars[-1] += "</w>"
        words[tuple(chars)] = c
    merges = []
    while True:
        pairs = {}
        for syms, c in words.items():
            for p in zip(syms, syms[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        new = {}
        for syms, c in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            new[tuple(out)] = c
        words = new


def build_vocab(merges):
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "a merge produced an existing token"
    return vocab


class Tokenizer:
    """CLIP BPE over vocab.json / merges.txt (lower-case ASCII input)."""

    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")[1:]
        self.ranks = {tuple(l.split()): i for i, l in enumerate(lines) if l}
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            self.max_length = json.load(f)["model_max_length"]
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.enc = bytes_to_unicode()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = [self.enc[b] for b in word.encode("utf-8")]
        syms[-1] += "</w>"
        while len(syms) > 1:
            pairs = [(self.ranks.get(p, 1 << 30), i) for i, p in enumerate(zip(syms, syms[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            first, second = [p for p in zip(syms, syms[1:]) if self.ranks.get(p) == rank][0]
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == first and syms[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        """Padded ids: [BOS, ..., EOS, EOS...] of length max_length (truncating)."""
        text = " ".join(text.lower().split())
        assert all(ord(ch) < 128 for ch in text), "ASCII only"
        ids = []
        for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text):
            ids += self.bpe(w)
        ids = [self.bos] + ids[:self.max_length - 2] + [self.eos]
        return ids + [self.eos] * (self.max_length - len(ids))


def write(folder):
    os.makedirs(folder, exist_ok=True)
    merges = learn_merges(dataset.caption_vocabulary())
    vocab = build_vocab(merges)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write("%s %s\n" % (a, b))
    special = {"content": None, "lstrip": False, "normalized": True, "rstrip": False,
               "single_word": False}
    decoder = {str(vocab[t]): dict(special, content=t, special=True) for t in (BOS, EOS)}
    config = {
        "added_tokens_decoder": decoder, "bos_token": BOS, "clean_up_tokenization_spaces": True,
        "eos_token": EOS, "errors": "replace", "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": EOS, "tokenizer_class": "CLIPTokenizer", "unk_token": EOS,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    smap = {"bos_token": dict(special, content=BOS), "eos_token": dict(special, content=EOS),
            "pad_token": EOS, "unk_token": dict(special, content=EOS)}
    with open(os.path.join(folder, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(smap, f, indent=2)
        f.write("\n")
    return len(vocab), len(merges)


if __name__ == "__main__":
    import sys
    out = sys.argv[1] if len(sys.argv) > 1 else "models/default/tokenizer"
    nv, nm = write(out)
    print("%s: %d tokens, %d merges" % (out, nv, nm))
    tok = Tokenizer(out)
    for s in ("a large red circle on the left", "a triangle", "a dog"):
        print(s, tok.encode(s))
