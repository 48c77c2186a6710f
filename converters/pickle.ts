/**
 * A restricted unpickler for PyTorch state_dicts. It builds plain JavaScript values and never runs anything:
 * the only globals it accepts are the handful a tensor state_dict needs (tensor rebuild functions, storage
 * types, OrderedDict), and each of those is "called" by our own code that checks its arguments.
 * Any other global, and every opcode that would create an arbitrary object (INST, OBJ, NEWOBJ, EXT*), is refused.
 */
import type { SourceDType } from './checkpoint.js';

/** A Python dict or OrderedDict (insertion order kept). Keys are JS primitives (str, int, bool, None). */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
}

/** A reference to a module-level name, only ever one of the allowed ones. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage named by a persistent id: its bytes live in the archive's `data/<key>` entry. */
export class StorageRef {
  constructor(
    readonly dtype: SourceDType,
    readonly key: string,
    readonly location: string,
    /** Elements (not bytes). */
    readonly numel: number,
  ) {}
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage (offset and strides in elements). */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export const STORAGE_DTYPES: Record<string, SourceDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export const DTYPE_BYTES: Record<SourceDType, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, uint8: 1, bool: 1,
};

/**
 * Training metadata that full training checkpoints (the released VQGAN file is a whole LDM training checkpoint)
 * carry beside the state_dict: PyTorch Lightning callbacks keyed by their class, numpy scalars and arrays.
 * They become inert placeholders (nothing is constructed or called) and are never tensors.
 */
const INERT = new Set([
  'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint',
  'numpy.core.multiarray.scalar',
  'numpy.core.multiarray._reconstruct',
  'numpy._core.multiarray.scalar',
  'numpy._core.multiarray._reconstruct',
  'numpy.ndarray',
  'numpy.dtype',
]);

/** What an inert global's REDUCE / NEWOBJ gives: a name and nothing else. */
export class Inert {
  constructor(readonly type: string) {}
}

const MAX_DIMS = 32;

type Callable = (args: unknown[], fail: (msg: string) => never) => unknown;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function intList(v: unknown, what: string, fail: (msg: string) => never): number[] {
  if (!Array.isArray(v) || v.length > MAX_DIMS) fail(`${what} must be a tuple of at most ${MAX_DIMS} integers`);
  const out = v as unknown[];
  for (const x of out) if (!isInt(x) || x < 0) fail(`${what} must hold non-negative integers`);
  return out as number[];
}

function rebuildTensor(args: unknown[], fail: (msg: string) => never): TensorRef {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length < 4 || args.length > 7) fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) fail('_rebuild_tensor_v2: first argument is not a storage');
  if (!isInt(offset) || offset < 0) fail('_rebuild_tensor_v2: bad storage offset');
  const shape = intList(size, 'tensor size', fail);
  const strides = intList(stride, 'tensor stride', fail);
  if (shape.length !== strides.length) fail('_rebuild_tensor_v2: size and stride differ in length');
  return new TensorRef(storage, offset, shape.slice(), strides.slice());
}

function rebuildParameter(args: unknown[], fail: (msg: string) => never): TensorRef {
  // (data, requires_grad, backward_hooks[, state])
  if (args.length < 1 || !(args[0] instanceof TensorRef)) fail('_rebuild_parameter: first argument is not a tensor');
  return args[0] as TensorRef;
}

function orderedDict(args: unknown[], fail: (msg: string) => never): PyDict {
  const d = new PyDict();
  if (args.length === 0) return d;
  if (args.length !== 1 || !Array.isArray(args[0])) fail('OrderedDict takes at most one list of pairs');
  for (const pair of args[0] as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) fail('OrderedDict items must be pairs');
    d.map.set(pair[0], pair[1]);
  }
  return d;
}

function setOf(args: unknown[], fail: (msg: string) => never): unknown[] {
  if (args.length === 0) return [];
  if (args.length !== 1 || !Array.isArray(args[0])) fail('set takes one list');
  return (args[0] as unknown[]).slice();
}

function emptyBytes(args: unknown[], fail: (msg: string) => never): Uint8Array {
  if (args.length !== 0) fail('bytes() is accepted only without arguments');
  return new Uint8Array(0);
}

/** `_codecs.encode(str, 'latin1')`: how protocol 2 pickles a bytes object. */
function codecsEncode(args: unknown[], fail: (msg: string) => never): Uint8Array {
  if (args.length !== 2 || typeof args[0] !== 'string' || (args[1] !== 'latin1' && args[1] !== 'latin-1')) {
    fail("_codecs.encode is accepted only as encode(str, 'latin1')");
  }
  const s = args[0] as string;
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) fail('_codecs.encode: character outside latin1');
    out[i] = c;
  }
  return out;
}

/** Globals that may appear, and what REDUCE on them does (undefined: a name that may not be called). */
const ALLOWED: Record<string, Callable | undefined> = {
  'collections.OrderedDict': orderedDict,
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_parameter': rebuildParameter,
  'torch._utils._rebuild_parameter_with_state': rebuildParameter,
  'torch._tensor._rebuild_from_type_v2': rebuildFromType,
  'builtins.set': setOf,
  'builtins.frozenset': setOf,
  '__builtin__.set': setOf,
  '__builtin__.frozenset': setOf,
  // Protocol 2 writes b'' as bytes(): only that form is accepted.
  'builtins.bytes': emptyBytes,
  '__builtin__.bytes': emptyBytes,
  '_codecs.encode': codecsEncode,
  // Types that only appear as arguments (`_rebuild_from_type_v2`'s new_type).
  'torch.Tensor': undefined,
  'torch._tensor.Tensor': undefined,
  'torch.nn.parameter.Parameter': undefined,
  ...Object.fromEntries(Object.keys(STORAGE_DTYPES).map((k) => [`torch.${k}`, undefined])),
};

function rebuildFromType(args: unknown[], fail: (msg: string) => never): unknown {
  // (func, new_type, args, state): func(*args), then the tensor subclass is dropped.
  if (args.length !== 4) fail('_rebuild_from_type_v2 takes 4 arguments');
  const [func, newType, inner] = args;
  if (!(func instanceof PyGlobal) || !(newType instanceof PyGlobal) || !Array.isArray(inner)) {
    fail('_rebuild_from_type_v2: malformed arguments');
  }
  const f = func as PyGlobal;
  const t = (newType as PyGlobal).qualified;
  if (t !== 'torch.Tensor' && t !== 'torch._tensor.Tensor' && t !== 'torch.nn.parameter.Parameter') {
    fail(`_rebuild_from_type_v2: refusing tensor type '${t}'`);
  }
  if (f.qualified !== 'torch._utils._rebuild_tensor_v2' && f.qualified !== 'torch._utils._rebuild_parameter') {
    fail(`_rebuild_from_type_v2: refusing to call '${f.qualified}'`);
  }
  return ALLOWED[f.qualified]!(inner as unknown[], fail);
}

const MARK = Symbol('mark');

export interface UnpickleOptions {
  /** Names the file in errors. */
  source: string;
  /** Turns a persistent id (BINPERSID) into a value; the unpickler refuses persistent ids without it. */
  persistentLoad?: (pid: unknown, fail: (msg: string) => never) => unknown;
}

/**
 * Unpickles `buf` (protocols 2 to 5, minus everything that makes arbitrary objects). Throws `Error` naming
 * `source` on any refusal or malformed input.
 */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions): unknown {
  return unpickleAt(buf, 0, opts).value;
}

/** Unpickles the pickle that starts at `start`; `end` is the offset after its STOP (files may hold several). */
export function unpickleAt(buf: Uint8Array, start: number, opts: UnpickleOptions): { value: unknown; end: number } {
  const { source } = opts;
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const refuse = (name: string): never => fail(`refusing pickle global '${name}' (a checkpoint may only contain tensors${
    name.startsWith('torch.nn.modules.') ? ': save model.state_dict(), not the model' : ''})`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = start;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number): void => {
    if (n < 0 || pos + n > buf.length) fail(`truncated pickle (wanted ${n} bytes at offset ${pos} of ${buf.length})`);
  };
  const u8 = (): number => {
    need(1);
    return buf[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(buf.length)) fail(`length ${v} at offset ${pos - 8} exceeds the pickle`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 4096) fail(`malformed pickle text line at offset ${pos}`);
    const s = latin1.decode(buf.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail(`invalid UTF-8 string at offset ${pos - b.length}`);
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail(`pickle stack underflow at offset ${pos - 1}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail(`pickle stack underflow at offset ${pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`pickle MARK missing at offset ${pos - 1}`);
    return stack.splice(m!).slice(1); // without the MARK
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!Object.prototype.hasOwnProperty.call(ALLOWED, q) && !INERT.has(q)) refuse(q);
    return new PyGlobal(module, name);
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    if (b.length > 16) fail(`integer of ${b.length} bytes is too large for a checkpoint`);
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) fail(`SETITEM on a ${describe(d)}`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).map.set(items[i], items[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail(`APPEND on a ${describe(l)}`);
    for (const it of items) (l as unknown[]).push(it);
  };

  if (pos >= buf.length) fail('empty pickle');
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p < 2 || p > 5) fail(`unsupported pickle protocol ${p}`);
        break;
      }
      case 0x95: // FRAME: just a length hint
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length !== 0) fail('malformed pickle: the stack does not end with one value');
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        stack.push(MARK);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longFrom(bytes(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(longFrom(bytes(n)));
        break;
      }
      case 0x47: { // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x58: stack.push(text(bytes(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(text(bytes(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(bytes(u64()))); break; // BINUNICODE8
      case 0x55: stack.push(latin1.decode(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x54: { // BINSTRING
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1.decode(bytes(n)));
        break;
      }
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(Object.freeze([pop()])); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(Object.freeze([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(Object.freeze([a, b, c]));
        break;
      }
      case 0x74: { // TUPLE
        const items = popMark();
        stack.push(Object.freeze(items));
        break;
      }
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const items = popMark();
        const d = new PyDict();
        setItems(d, items);
        stack.push(d);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: stack.push([]); break; // EMPTY_SET (a set is read as a list)
      case 0x90: { // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x91: { // FROZENSET
        const items = popMark();
        stack.push(Object.freeze(items));
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`pickle memo ${i} is not set`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x69: { // INST: names its class inline
        const module = line();
        const name = line();
        refuse(`${module}.${name}`);
        break;
      }
      case 0x81: // NEWOBJ: only of an inert type
        if (stack[stack.length - 2] instanceof PyGlobal && INERT.has((stack[stack.length - 2] as PyGlobal).qualified)) {
          pop();
          stack.push(new Inert((pop() as PyGlobal).qualified));
          break;
        }
      // falls through
      case 0x6f: case 0x92: { // OBJ, NEWOBJ, NEWOBJ_EX: build arbitrary objects
        const opname = op === 0x6f ? 'OBJ' : op === 0x81 ? 'NEWOBJ' : 'NEWOBJ_EX';
        const cls = op === 0x6f ? stack[marks[marks.length - 1] + 1] : stack[stack.length - (op === 0x81 ? 2 : 3)];
        if (cls instanceof PyGlobal) refuse(cls.qualified);
        fail(`refusing pickle opcode ${opname} (a checkpoint may only contain tensors)`);
        break;
      }
      case 0x82: case 0x83: case 0x84: // EXT1, EXT2, EXT4
        fail('refusing pickle extension-registry opcode (a checkpoint may only contain tensors)');
        break;
      case 0x52: { // REDUCE
        const args = pop();
        const f = pop();
        if (!(f instanceof PyGlobal)) fail(`REDUCE on a ${describe(f)}`);
        const g = f as PyGlobal;
        if (INERT.has(g.qualified)) {
          stack.push(new Inert(g.qualified));
          break;
        }
        const call = ALLOWED[g.qualified];
        if (!call) fail(`refusing to call pickle global '${g.qualified}' (a checkpoint may only contain tensors)`);
        if (!Array.isArray(args)) fail(`REDUCE of '${g.qualified}' without an argument tuple`);
        stack.push(call!(args as unknown[], fail));
        break;
      }
      case 0x62: { // BUILD: only a dict's attribute state (OrderedDict._metadata), which we drop
        const state = pop();
        const obj = top();
        if (obj instanceof Inert) break;
        if (!(obj instanceof PyDict)) fail(`refusing BUILD on a ${describe(obj)} (a checkpoint may only contain tensors)`);
        if (state !== null && !(state instanceof PyDict) && !Array.isArray(state)) fail('BUILD with a malformed state');
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent id in a pickle that may not have any');
        stack.push(opts.persistentLoad!(pid, fail));
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${pos - 1}`);
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v === MARK) return 'MARK';
  if (v instanceof PyGlobal) return `global '${v.qualified}'`;
  if (v instanceof PyDict) return 'dict';
  if (v instanceof TensorRef) return 'tensor';
  if (v instanceof StorageRef) return 'storage';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  return typeof v;
}
