import * as tf from '@tensorflow/tfjs';
import { characterEntities } from 'character-entities';
import { characterEntitiesLegacy } from 'character-entities-legacy';
import { readTokenizerFiles } from './tokenizer-files.js';

/*
 * The CLIP byte-level BPE tokenizer, giving the ids of open_clip.tokenize (v2.20) exactly.
 *
 * Text cleaning mirrors open_clip's `whitespace_clean(basic_clean(text)).lower()`:
 *   basic_clean = ftfy.fix_text, then Python's html.unescape twice, then str.strip().
 * `ftfyFixText` below does what ftfy 6 fix_text does to text that is not mojibake (see docs/parity-clip.md):
 * HTML entity decoding in ftfy's own cautious way (only when the line has no '<'), C1 controls as Windows-1252,
 * Latin ligatures, full/half-width forms, curly quotes, line breaks, lone surrogates, terminal escapes, control
 * characters, NFC, repeated until nothing changes. Not done: ftfy's mojibake repair (fix_encoding), which needs
 * its statistical "badness" model; prompts typed by people do not contain mojibake.
 */

// ---------------------------------------------------------------------------------------------------------------
// Python's html.unescape, rule for rule (numeric references, the HTML5 entity table, longest legacy prefix).

/** Numeric references Python maps specially (the Windows-1252 meanings of 0x80-0x9F, NUL, CR). */
const WIN1252_C1 = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

function invalidCharref(n: number): string | undefined {
  if (n === 0) return '\ufffd';
  if (n === 0x0d) return '\r';
  if (n >= 0x80 && n <= 0x9f) return String.fromCodePoint(WIN1252_C1[n - 0x80]);
  return undefined;
}

/** Code points Python's html.unescape drops from numeric references. */
function isInvalidCodepoint(n: number): boolean {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

/** Python's html.entities.html5: every name with its ';', and the legacy names also without. */
const HTML5 = new Map<string, string>();
for (const [name, value] of Object.entries(characterEntities)) HTML5.set(`${name};`, value);
for (const name of characterEntitiesLegacy) HTML5.set(name, characterEntities[name]);

function numericRef(body: string): string {
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
  const n = digits.length > 12 ? Infinity : parseInt(digits, hex ? 16 : 10);
  const special = invalidCharref(n);
  if (special !== undefined) return special;
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  if (isInvalidCodepoint(n)) return '';
  return String.fromCodePoint(n);
}

const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Python's `html.unescape`. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF, (_m, body: string) => {
    if (body[0] === '#') return numericRef(body);
    const direct = HTML5.get(body);
    if (direct !== undefined) return direct;
    const cps = Array.from(body);
    for (let x = cps.length - 1; x > 1; x--) {
      const prefix = cps.slice(0, x).join('');
      const v = HTML5.get(prefix);
      if (v !== undefined) return v + cps.slice(x).join('');
    }
    return `&${body}`;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// ftfy 6.3 fix_text for text without mojibake.

/** ftfy's entity table: names ending in ';', plus upper-cased forms of lower-case names that are not entities. */
const FTFY_ENTITIES = (() => {
  const m = new Map<string, string>();
  for (const [name, value] of Object.entries(characterEntities)) {
    m.set(`&${name};`, value);
  }
  for (const [name, value] of Object.entries(characterEntities)) {
    if (name !== name.toLowerCase()) continue;
    const upper = `&${name.toUpperCase()};`;
    if (htmlUnescape(upper) === upper) m.set(upper, value.toUpperCase());
  }
  return m;
})();

function ftfyUnescapeHtml(text: string): string {
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (m) => {
    const v = FTFY_ENTITIES.get(m);
    if (v !== undefined) return v;
    if (m.startsWith('&#')) {
      const u = htmlUnescape(m);
      return u.includes(';') ? m : u;
    }
    return m;
  });
}

const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž',
  'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj',
  'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'gu');

/** U+3000 and the halfwidth/fullwidth forms block U+FF01..U+FFEF, each to its NFKC form where that differs. */
const WIDTH_MAP = (() => {
  const m = new Map<string, string>([['\u3000', ' ']]);
  for (let i = 0xff01; i < 0xfff0; i++) {
    const c = String.fromCharCode(i);
    const alt = c.normalize('NFKC');
    if (alt !== c) m.set(c, alt);
  }
  return m;
})();

function fixSegment(segment: string, unescape: boolean): string {
  let text = segment;
  for (;;) {
    const orig = text;
    if (unescape) text = ftfyUnescapeHtml(text);
    text = text.replace(/[\x80-\x9f]/g, (c) => String.fromCodePoint(WIN1252_C1[c.charCodeAt(0) - 0x80]));
    text = text.replace(LIGATURE_RE, (c) => LIGATURES[c]);
    text = text.replace(/[\u3000\uff01-\uffef]/g, (c) => WIDTH_MAP.get(c) ?? c);
    text = text.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
    text = text.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\x85]/g, '\n');
    text = text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
    text = text.replace(/\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu, '');
    text = text.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
    text = text.normalize('NFC');
    if (text === orig) return text;
  }
}

/** ftfy.fix_text (default configuration) without mojibake repair; line by line, as ftfy does. */
export function ftfyFixText(text: string): string {
  const out: string[] = [];
  let unescape = true; // ftfy's "auto": once a line holds '<', entities are left alone from there on
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl + 1;
    const segment = text.slice(pos, end);
    if (unescape && segment.includes('<')) unescape = false;
    out.push(fixSegment(segment, unescape));
    pos = end;
  }
  return out.join('');
}

// ---------------------------------------------------------------------------------------------------------------
// Whitespace as Python sees it: the `regex` module's \s, and str.isspace() for strip().

const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WS}]+`, 'gu');
const STRIP = new RegExp(`^[${WS}\\x1c-\\x1f]+|[${WS}\\x1c-\\x1f]+$`, 'gu');

const pyStrip = (s: string) => s.replace(STRIP, '');

/** open_clip's `whitespace_clean(basic_clean(text)).lower()`. */
export function cleanText(text: string): string {
  const basic = pyStrip(htmlUnescape(htmlUnescape(ftfyFixText(text))));
  return pyStrip(basic.replace(WS_RUN, ' ')).toLowerCase();
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level BPE.

/** GPT-2's reversible map from the 256 byte values to printable characters. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

/** The 256 byte characters in vocabulary order (ids 0..255): printable ranges first, then the remapped ones. */
export function byteAlphabet(): string[] {
  const table = bytesToUnicode();
  const order: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) order.push(b);
  for (let b = 0xa1; b <= 0xac; b++) order.push(b);
  for (let b = 0xae; b <= 0xff; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  return order.map((b) => table[b]);
}

export const START_OF_TEXT = '<start_of_text>';
export const END_OF_TEXT = '<end_of_text>';
/** Merges used from OpenCLIP's list: 49152 - 256 - 2 (the header line excluded). */
const OPENCLIP_MERGES = 49152 - 256 - 2;

export interface TokenizerOptions {
  contextLength?: number;
}

export class CLIPTokenizer {
  readonly contextLength: number;
  readonly sotToken: number;
  readonly eotToken: number;
  readonly vocabSize: number;
  private readonly byteEncoder = bytesToUnicode();
  private readonly byteDecoder = new Map<string, number>();
  private readonly decoder = new Map<number, string>();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string>();
  private readonly pattern: RegExp;

  /** `merges` as [first, second] pairs in rank order; `encoder` maps every token to its id. */
  constructor(merges: [string, string][], private readonly encoder: Map<string, number>, opts: TokenizerOptions = {}) {
    this.contextLength = opts.contextLength ?? 77;
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    this.byteEncoder.forEach((c, b) => this.byteDecoder.set(c, b));
    for (const [tok, id] of encoder) this.decoder.set(id, tok);
    const sot = encoder.get(START_OF_TEXT);
    const eot = encoder.get(END_OF_TEXT);
    if (sot === undefined || eot === undefined) throw new Error('CLIP tokenizer: vocabulary lacks the start/end-of-text tokens');
    this.sotToken = sot;
    this.eotToken = eot;
    this.vocabSize = Math.max(...encoder.values()) + 1;
    for (const t of [START_OF_TEXT, END_OF_TEXT]) this.cache.set(t, t);
    // open_clip compiles this with IGNORECASE; the u flag gives \p{L} and \p{N}
    this.pattern = new RegExp(
      `${START_OF_TEXT}|${END_OF_TEXT}|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WS}\\p{L}\\p{N}]+`, 'giu');
  }

  /** From OpenCLIP's merge list (`bpe_simple_vocab_16e6.txt`, gzipped or not). */
  static fromMergesText(text: string, opts?: TokenizerOptions): CLIPTokenizer {
    const lines = text.split('\n').slice(1, OPENCLIP_MERGES + 1);
    const merges = lines.map((l) => l.split(/\s+/).filter(Boolean) as [string, string]);
    const bytes = byteAlphabet();
    const vocab = [...bytes, ...bytes.map((c) => `${c}</w>`), ...merges.map((m) => m.join('')), START_OF_TEXT, END_OF_TEXT];
    const encoder = new Map<string, number>();
    vocab.forEach((t, i) => encoder.set(t, i));
    return new CLIPTokenizer(merges, encoder, opts);
  }

  /**
   * From the Hugging Face layout (`vocab.json`, `merges.txt` with a `#version` header). Its special tokens are
   * spelled `<|startoftext|>` / `<|endoftext|>`; they answer to OpenCLIP's spellings too, so a prompt gives the
   * same ids whichever layout the vocabulary came in.
   */
  static fromHuggingFace(vocabJson: string, mergesText: string, opts?: TokenizerOptions): CLIPTokenizer {
    const vocab = JSON.parse(vocabJson) as Record<string, number>;
    const encoder = new Map(Object.entries(vocab));
    const lines = mergesText.split('\n');
    const body = lines[0]?.startsWith('#version') ? lines.slice(1) : lines;
    const merges = body.filter((l) => l.trim().length > 0).slice(0, OPENCLIP_MERGES)
      .map((l) => l.split(/\s+/).filter(Boolean) as [string, string]);
    for (const [ours, hf] of [[START_OF_TEXT, '<|startoftext|>'], [END_OF_TEXT, '<|endoftext|>']] as const) {
      const id = encoder.get(hf) ?? encoder.get(ours);
      if (id !== undefined) encoder.set(ours, id);
    }
    return new CLIPTokenizer(merges, encoder, opts);
  }

  /**
   * `path`: OpenCLIP's `bpe_simple_vocab_16e6.txt.gz` (or `.txt`), or a folder holding `vocab.json` +
   * `merges.txt`, or a folder holding `bpe_simple_vocab_16e6.txt.gz`.
   */
  static async load(path: string, opts?: TokenizerOptions): Promise<CLIPTokenizer> {
    const f = await readTokenizerFiles(path);
    return 'vocab' in f ? CLIPTokenizer.fromHuggingFace(f.vocab, f.merges, opts) : CLIPTokenizer.fromMergesBytes(f.bytes, path, opts);
  }

  /** From the bytes of OpenCLIP's merge list, gzipped or not (`name` is for messages). Works in Node and browsers. */
  static async fromMergesBytes(raw: Uint8Array, name: string, opts?: TokenizerOptions): Promise<CLIPTokenizer> {
    const isGzip = raw.length > 2 && raw[0] === 0x1f && raw[1] === 0x8b;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: false }).decode(isGzip ? await gunzip(raw) : raw);
    } catch (e) {
      throw new Error(`CLIP tokenizer ${name}: cannot decompress (${(e as Error).message}); expected bpe_simple_vocab_16e6.txt.gz`);
    }
    if (!/^\S+ \S+$/m.test(text.slice(0, 10000))) {
      throw new Error(`CLIP tokenizer ${name}: not a BPE merge list`);
    }
    return CLIPTokenizer.fromMergesText(text, opts);
  }

  private bpe(token: string): string {
    const hit = this.cache.get(token);
    if (hit !== undefined) return hit;
    let word = [...token.slice(0, -1)];
    word.push(`${token.slice(-1)}</w>`);
    if (word.length === 1) return word[0];
    while (word.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          first = word[i];
          second = word[i + 1];
        }
      }
      if (best === Infinity) break;
      const merged: string[] = [];
      let i = 0;
      while (i < word.length) {
        const j = word.indexOf(first, i);
        if (j < 0) {
          merged.push(...word.slice(i));
          break;
        }
        merged.push(...word.slice(i, j));
        i = j;
        if (i < word.length - 1 && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]);
          i += 1;
        }
      }
      word = merged;
    }
    const out = word.join(' ');
    this.cache.set(token, out);
    return out;
  }

  /** The BPE ids of `text`, without start/end tokens or padding (open_clip's `SimpleTokenizer.encode`). */
  encodeText(text: string): number[] {
    const ids: number[] = [];
    const utf8 = new TextEncoder();
    // U+0345 (combining iota) is neither a letter nor "other" to open_clip's case-insensitive pattern, so it
    // ends a match and yields no token; JS's /iu counts it a letter. A space does exactly what it does there.
    for (const m of cleanText(text).replace(/\u0345/g, ' ').matchAll(this.pattern)) {
      let token = '';
      for (const b of utf8.encode(m[0])) token += this.byteEncoder[b];
      for (const piece of this.bpe(token).split(' ')) {
        const id = this.encoder.get(piece);
        if (id === undefined) throw new Error(`CLIP tokenizer: ${JSON.stringify(piece)} is not in the vocabulary`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** open_clip.tokenize for one text: start token, ids, end token, zero padding; too long is cut, keeping the end token. */
  encode(text: string): number[] {
    const ids = [this.sotToken, ...this.encodeText(text), this.eotToken];
    if (ids.length > this.contextLength) {
      ids.length = this.contextLength;
      ids[this.contextLength - 1] = this.eotToken;
    }
    while (ids.length < this.contextLength) ids.push(0);
    return ids;
  }

  /** Row-major [texts.length, contextLength]. */
  tokenize(texts: string | string[]): Int32Array {
    const list = typeof texts === 'string' ? [texts] : texts;
    const out = new Int32Array(list.length * this.contextLength);
    list.forEach((t, i) => out.set(this.encode(t), i * this.contextLength));
    return out;
  }

  /** `tokenize` as an int32 tensor [n, contextLength], the text encoder's input. */
  tokenizeTensor(texts: string | string[]): tf.Tensor2D {
    const n = typeof texts === 'string' ? 1 : texts.length;
    return tf.tensor2d(this.tokenize(texts), [n, this.contextLength], 'int32');
  }

  /** Ids back to text (open_clip's `decode`): word ends become spaces; padding and special tokens are kept as text. */
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.decoder.get(ids[i]) ?? '';
    const bytes: number[] = [];
    for (const c of s) {
      const b = this.byteDecoder.get(c);
      if (b !== undefined) bytes.push(b);
    }
    return new TextDecoder('utf-8').decode(new Uint8Array(bytes)).replace(/<\/w>/g, ' ');
  }
}

/** gunzip through the web's DecompressionStream (Node 18+ and browsers). */
async function gunzip(raw: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
