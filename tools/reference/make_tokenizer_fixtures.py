"""Token ids from open_clip.tokenize (v2.20, real ftfy) for a few hundred prompts -> test/fixtures/tokenizer/.

T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_tokenizer_fixtures.py [path/to/bpe_simple_vocab_16e6.txt.gz]
The vocabulary defaults to ../shared/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz beside the checkout.
"""
import hashlib
import json
import os
import random
import sys

import _ref  # noqa: F401  (sys.path)
import ftfy
from open_clip import tokenizer as oc_tok

VOCAB = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    _ref.ROOT, '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz')

HAND = [
    '', ' ', '\t\n  ', 'a', 'A', '.', '!!!', '...', "it's", "IT'S", "we'll they've I'm you're she'd don't",
    'A cat wearing sunglasses, surfing a big wave at sunset.',
    'Astronaut riding a horse on Mars, 4k, highly detailed',
    'a panda eating bamboo on a rock.', 'Spiderman is surfing', 'A dog running in the snow (slow motion)',
    'A time-lapse of clouds over New York City; golden hour!', 'drone shot: waves crashing on cliffs -- cinematic',
    'rgb(255,128,0) #ff8800 @user https://example.com/a?b=c&d=e', 'C++ vs. C# vs. F#: 3.14159 2,718 1e-9 100%',
    '$1,000,000 in 2023/12/31 at 23:59:59', 'x^2 + y^2 = z^2', '1234567890', '0.5x speed', 'v1.2.3-beta+build.45',
    'snake_case camelCase PascalCase kebab-case SCREAMING_CASE', 'email@example.org', '<html><body>hi</body></html>',
    '[brackets] {braces} (parens) <angles>', '"double" \'single\' `back`', '~!@#$%^&*()_+-=|\\:;"\'<>,.?/',
    'café crème brûlée à la mode', 'naïve résumé façade coöperate', 'Ångström Øresund Æsir œuvre straße',
    'Zürich München Köln', 'São Paulo, Brasília, Bogotá', 'Dvořák Škoda Łódź Kraków', 'İstanbul ıI iİ',
    'ΑΒΓ αβγ Σίσυφος ΟΔΥΣΣΕΥΣ', 'Москва — столица России', 'עברית ערבית', 'العربية لغة جميلة',
    'हिन्दी भाषा', 'ภาษาไทย', '한국어 텍스트', '日本語のテキスト、カタカナ、ひらがな。', '中文文本：一只猫在弹钢琴',
    '一只熊猫在竹林里吃竹子', 'Ｆｕｌｌｗｉｄｔｈ　ＴＥＸＴ　１２３', 'ﾊﾝｶｸ ｶﾀｶﾅ', 'ﬁne ﬂower ﬀ ﬃ ﬄ ﬅ ﬆ', 'Ĳssel ǅ ǈ ǋ',
    '\u201ccurly quotes\u201d and \u2018single\u2019 and \u201elow\u201f', 'it\u2019s a dog\u2019s life', 'modifier \u02bcletter',
    'emoji 😀🎉🐱‍👤 👍🏽 🇫🇷 ❤️', '🔥🔥🔥', 'a 🐕 and a 🐈 playing', '👨‍👩‍👧‍👦 family', '✨sparkles✨', '☃ ☂ ★ ♫ ✓ ✗',
    'math ∑ ∫ √ ∞ ≈ ≠ ≤ ≥ ± × ÷', 'arrows ← → ↑ ↓ ⇒', 'currency € £ ¥ ₹ ₿ ¢', 'super ² ³ ¹ ⁴ sub ₁ ₂', 'fractions ½ ¼ ¾ ⅓',
    'roman Ⅻ ⅻ ⅷ', 'circled ⓐⓑⓒ ① ② Ⓐ', 'digits ٠١٢٣ ०१२ ๑๒๓ １２３', 'kelvin \u212a and long s \u017f', "it'\u017f ok",
    'greek iota \u0345 subscript', 'combining e\u0301 a\u0300 n\u0303 (NFD)', 'Amélie (NFC) vs Ame\u0301lie (NFD)',
    'Tom &amp; Jerry', 'fish &amp;amp; chips', '&lt;b&gt;bold&lt;/b&gt;', '&quot;quoted&quot; &apos;x&apos;',
    '&eacute;t&eacute; &Eacute;T&Eacute; &EACUTE;T&EACUTE;', '&ntilde; &Ntilde; &NTILDE; &nTILDE;', 'P&EACUTE;REZ BUNDESSTRA&SZLIG;E',
    '&#65;&#66;&#x43; &#x1F600; &#128512;', '&#0; &#13; &#128; &#150; &#x9d; &#1; &#xD800; &#x110000;',
    'AT&T and R&D', 'this&not that', '&notit; &notin; &ampfoo &amp', '&hellip; &mdash; &ndash; &nbsp;space',
    '&copy; 2024 &reg; &trade;', '&Jscr;ohn &HilbertSpace;ancock &checkmark;', '&frac12; cup &times; 2',
    'a < b &amp; c', 'first line &amp;\nsecond < line &amp;\nthird &amp;', '&unknownentity; &#xZZ; &#;',
    'nbsp\u00a0here', 'thin\u2009space', 'ideographic\u3000space', 'em\u2003space', 'line\u2028sep\u2029para',
    'tab\tand\nnewline\r\nand\rcr', 'NEL\x85char', 'zero\u200bwidth\u200cjoiner\u200d', 'bom\ufefftext', '\ufeffleading bom',
    'ctrl\x01\x02\x07chars\x7f', 'esc \x1b[31mred\x1b[0m text', 'C1 \x80\x93\x94\x9f controls', 'fs\x1cgs\x1drs\x1eus\x1f',
    '   leading and trailing   ', 'multiple     spaces\t\t\ttabs', '\n\n\nnewlines\n\n', 'vertical\x0btab\x0cformfeed',
    'object \ufffc replacement \ufffd', 'arabic controls \u206a\u206f', 'annotations \ufff9\ufffa\ufffb',
    '<start_of_text>', 'hello <end_of_text> world', '<START_OF_TEXT> shouting', '<|startoftext|>', '<|endoftext|>',
    '</w>', 'word</w>', 'a' * 100, 'ab' * 60, 'supercalifragilisticexpialidocious', 'pneumonoultramicroscopicsilicovolcanoconiosis',
    'unbelievably extraordinarily incomprehensibilities', 'hyper-realistic ultra-detailed 8k-resolution',
    'Hello, World!', 'HELLO WORLD', 'hello world', 'HeLLo WoRLD', 'ALL CAPS PROMPT WITH NUMBERS 123',
    'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen '
    'eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five twenty-six twenty-seven '
    'twenty-eight twenty-nine thirty thirty-one thirty-two thirty-three thirty-four thirty-five',
    ' '.join(['word'] * 80), ' '.join(str(i) for i in range(60)), '!' * 200, '😀' * 40, '中' * 90,
    'A beautiful landscape painting of a mountain lake at dawn, mist rising from the water, pine trees, '
    'reflections, soft light, by a famous artist, trending on artstation, octane render, unreal engine 5, '
    'volumetric lighting, photorealistic, masterpiece, best quality, 8k uhd, dslr, film grain',
    'x' * 300,
]

WORDS = ('cat dog horse panda robot astronaut city forest ocean river mountain desert snow rain sunset sunrise '
         'night neon cyberpunk watercolor oil painting photo cinematic slow motion timelapse drone aerial closeup '
         'portrait running flying swimming dancing eating walking jumping red blue green golden silver tiny huge '
         'ancient futuristic'.split())
EXTRA = ['é', 'ñ', 'ü', 'ß', 'ø', '猫', '犬', 'の', '😀', '🌊', '&amp;', '&eacute;', '\u2019s', ',', '.', '!', '?', ';',
         ':', '-', '--', '...', '(', ')', '"', "'", '42', '3.5', '2024', '#1', '@', '%', '\u00a0', '\t', '  ', 'ﬁ', 'Ｆ', 'К', 'ع']


def generated(n: int, seed: int) -> list:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rnd.randint(1, 18)):
            parts.append(rnd.choice(WORDS) if rnd.random() < 0.6 else rnd.choice(EXTRA))
            if rnd.random() < 0.3:
                parts[-1] = parts[-1].capitalize()
        sep = rnd.choice([' ', ' ', ' ', '', ', ', '  '])
        out.append(sep.join(parts))
    return out


# Code point ranges for random strings: Latin, accents and combining marks, Greek, Cyrillic, Arabic, Devanagari,
# Hangul, kana, CJK, full-width forms, general punctuation, symbols, emoji, and every kind of space and control.
RANGES = [(0x20, 0x7e), (0xa0, 0x17f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x600, 0x6ff), (0x900, 0x97f),
          (0xac00, 0xac40), (0x3040, 0x30ff), (0x4e00, 0x4e80), (0xff01, 0xffef), (0x2000, 0x206f), (0x2100, 0x22ff),
          (0x1f300, 0x1f64f), (0x1f900, 0x1f9ff), (0x0, 0x1f), (0x80, 0x9f), (0xfe00, 0xfe0f), (0xfeff, 0xfeff)]


def fuzz(n: int, seed: int) -> list:
    """Random strings on which ftfy's mojibake repair (not ported, see docs/parity-clip.md) does nothing."""
    rnd = random.Random(seed)
    out = []
    while len(out) < n:
        k = rnd.randint(1, 40)
        t = ''.join(chr(rnd.randint(*rnd.choice(RANGES))) for _ in range(k))
        if rnd.random() < 0.3:
            t = rnd.choice(WORDS) + ' ' + t + ' ' + rnd.choice(WORDS)
        if ftfy.fix_text(t) == ftfy.fix_text(t, fix_encoding=False):
            out.append(t)
    return out


def main() -> None:
    with open(VOCAB, 'rb') as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    # open_clip.tokenize uses the module's tokenizer; point it at the given vocabulary
    oc_tok._tokenizer = oc_tok.SimpleTokenizer(VOCAB)
    prompts = HAND + generated(140, 1234) + fuzz(300, 99)
    ids = oc_tok.tokenize(prompts, context_length=77)
    clean = [oc_tok.whitespace_clean(oc_tok.basic_clean(p)).lower() for p in prompts]
    out = os.path.join(_ref.FIXTURES, 'tokenizer')
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'open_clip_ids.json'), 'w', encoding='utf-8') as f:
        json.dump({
            'source': 'open_clip v2.20.0 tokenize(context_length=77), ftfy %s' % ftfy.__version__,
            'vocab_md5': md5,
            'cases': [{'text': p, 'clean': c, 'ids': row.tolist()} for p, c, row in zip(prompts, clean, ids)],
        }, f, ensure_ascii=True, indent=0)
    print(f'{len(prompts)} prompts, {sum(int((r > 0).sum()) for r in ids)} tokens, '
          f'{sum(1 for r in ids if r[-1] != 0)} at full length')


if __name__ == '__main__':
    main()
