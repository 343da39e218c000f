#!/usr/bin/env python3
"""Writes src/text/bert_compat_tables.inc: where Hugging Face `tokenizers`
(the reference for token-id parity) classifies a code point differently from
utf8proc, which fanin's WordPiece normalizer otherwise follows.

Why such tables exist: the BertNormalizer and BertPreTokenizer of `tokenizers`
take Unicode categories (Cc/Cf/Co "other", Mn marks, P* punctuation) from the
`unicode_categories` Rust crate, whose tables predate Unicode 9, while their
lowercasing comes from Rust's std (Unicode 16) and NFD from the
`unicode-normalization` crate. utf8proc 2.8 implements Unicode 15. For code
points assigned or re-categorised since, the two disagree (e.g. U+061D ARABIC
END OF TEXT MARK is Po in Unicode 14 but not punctuation to `tokenizers`).

Each table lists code points where the answer flips relative to utf8proc:
  kOtherFlip  "other" (dropped by text cleaning): Cc, Cf, Co, Cs
  kMarkFlip   nonspacing mark (dropped after NFD): Mn
  kPunctFlip  punctuation (split off as its own word): P* or ASCII punctuation
  kLowerOverride  lowercase mapping differs: (code point, tokenizers' result)
  kNfdIdentity    tokenizers does not decompose these code points
Run it in the venv that scripts/fetch_models.sh makes, after
`pip install tokenizers==<version below>`:
  .cache/venv/bin/python scripts/gen_bert_compat_tables.py
"""
import ctypes
import ctypes.util
import sys
from pathlib import Path

import tokenizers
from tokenizers import normalizers as N
from tokenizers import pre_tokenizers as P

root = Path(__file__).resolve().parent.parent
out_path = root / "src" / "text" / "bert_compat_tables.inc"

lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
lib.utf8proc_category.restype = ctypes.c_int
lib.utf8proc_tolower.restype = ctypes.c_int32
lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
lib.utf8proc_version.restype = ctypes.c_char_p
lib.utf8proc_unicode_version.restype = ctypes.c_char_p
# utf8proc_category_t values (utf8proc.h)
CN, MN, PC, PD, PS, PE, PI, PF, PO, CC, CF, CS, CO = 0, 6, 12, 13, 14, 15, 16, 17, 18, 26, 27, 28, 29
UTF8PROC_DECOMPOSE = 1 << 4
buf = (ctypes.c_int32 * 16)()


def u_nfd(cp):
    last = ctypes.c_int(0)
    n = lib.utf8proc_decompose_char(cp, buf, 16, UTF8PROC_DECOMPOSE, ctypes.byref(last))
    return [buf[i] for i in range(n)]


def is_ascii_punct(cp):
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126


clean = N.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
strip = N.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
lower = N.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
nfd = N.NFD()
pre = P.BertPreTokenizer()

other_flip, mark_flip, punct_flip, lower_override, nfd_identity = [], [], [], [], []
for cp in range(0x80, 0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    cat = lib.utf8proc_category(cp)
    # Text cleaning: dropped ("other") or kept; whitespace is the same in both.
    hf_other = clean.normalize_str(c) == ""
    u_other = cp == 0xFFFD or cat in (CC, CF, CO, CS)
    if hf_other != u_other:
        other_flip.append(cp)
    # NFD.
    hf_nfd = [ord(x) for x in nfd.normalize_str(c)]
    if hf_nfd != u_nfd(cp):
        if hf_nfd != [cp]:
            sys.exit(f"U+{cp:04X}: tokenizers decomposes to {hf_nfd}, utf8proc to {u_nfd(cp)}; "
                     "only identity overrides are supported")
        nfd_identity.append(cp)
    # Accent stripping, asked only of code points NFD leaves alone (the only
    # ones that reach the mark filter).
    if hf_nfd == [cp]:
        hf_mark = strip.normalize_str(c) == ""
        if hf_mark != (cat == MN):
            mark_flip.append(cp)
    # Punctuation, as the pre-tokenizer sees it.
    pieces = pre.pre_tokenize_str("a" + c + "a")
    hf_punct = len(pieces) == 3
    u_punct = is_ascii_punct(cp) or cat in (PC, PD, PS, PE, PI, PF, PO)
    if len(pieces) == 2:
        pass  # whitespace: checked by the normalizer test
    elif hf_punct != u_punct:
        punct_flip.append(cp)
    # Lowercase (simple mappings only; U+0130 maps to two code points in
    # Rust but never reaches lowercasing, since NFD splits it first).
    hf_low = [ord(x) for x in lower.normalize_str(c)]
    u_low = [lib.utf8proc_tolower(cp)]
    if hf_low != u_low and cp != 0x130:
        if len(hf_low) != 1:
            sys.exit(f"U+{cp:04X}: lowercases to {len(hf_low)} code points in tokenizers")
        lower_override.append((cp, hf_low[0]))


def ranges(cps):
    out = []
    for cp in cps:
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def emit_ranges(name, cps):
    rs = ranges(cps)
    lines = [f"// {len(cps)} code points in {len(rs)} ranges.",
             f"inline constexpr CodeRange {name}[] = {{"]
    row = []
    for a, b in rs:
        row.append(f"{{0x{a:X}, 0x{b:X}}},")
        if len(row) == 5:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("};")
    return "\n".join(lines)


text = f"""// Generated by scripts/gen_bert_compat_tables.py; do not edit.
// tokenizers {tokenizers.__version__} vs utf8proc {lib.utf8proc_version().decode()} (Unicode {lib.utf8proc_unicode_version().decode()}).
// Code points where Hugging Face tokenizers' BERT normalizer/pre-tokenizer
// disagree with utf8proc; see the generator for why. Sorted, inclusive ranges.
// clang-format off

{emit_ranges("kOtherFlip", other_flip)}

{emit_ranges("kMarkFlip", mark_flip)}

{emit_ranges("kPunctFlip", punct_flip)}

{emit_ranges("kNfdIdentity", nfd_identity)}

// {len(lower_override)} code points: (code point, lowercase in tokenizers).
inline constexpr CodeMap kLowerOverride[] = {{
""" + "\n".join(f"    {{0x{a:X}, 0x{b:X}}}," for a, b in lower_override) + """
};
// clang-format on
"""
out_path.write_text(text)
print(f"wrote {out_path}: other {len(other_flip)}, mark {len(mark_flip)}, punct {len(punct_flip)}, "
      f"nfd {len(nfd_identity)}, lower {len(lower_override)}")
