/**
 * The pickle VM: interprets the binary pickle opcodes torch.save emits (protocols 0–5) over a fixed allow-list of
 * globals, under the budgets (values created, MARK nesting), and checks the finished object graph (no cycles,
 * bounded depth). Nothing in a pickle is ever executed.
 */
import { type Budget, TorchCheckpointError } from './torch-limits.ts';
import { PyCallable, PyDict, PyOpaque, StorageType, describe, type Storage } from './pickle-values.ts';
import { makeGlobals } from './torch-storage.ts';

export interface PickleContext {
  file: string;
  budget: Budget;
  allowUnknownGlobals: boolean;
  loadStorage(type: StorageType, key: string, numel: number): Storage;
}

/** Opcodes that only move, memoise or mutate existing values (everything else creates one, MARK included). */
export const NON_CREATING_OPS = new Set([
  0x80, 0x95, 0x2e, // PROTO, FRAME, STOP
  0x71, 0x72, 0x94, 0x70, 0x68, 0x6a, 0x67, // BINPUT, LONG_BINPUT, MEMOIZE, PUT, BINGET, LONG_BINGET, GET
  0x30, 0x31, 0x32, // POP, POP_MARK, DUP
  0x61, 0x65, 0x73, 0x75, 0x62, // APPEND, APPENDS, SETITEM, SETITEMS, BUILD
]);

/** Containers whose children the graph walk visits (tensors, storages and scalars are leaves). */
export function children(v: unknown): unknown[] | undefined {
  if (v instanceof PyDict) {
    const out: unknown[] = [];
    for (const [k, x] of v) out.push(k, x);
    if (v.attrs !== undefined) out.push(v.attrs);
    return out;
  }
  if (Array.isArray(v)) return v;
  if (v instanceof PyOpaque) return [v.args, v.state];
  return undefined;
}

/**
 * Walk the unpickled object iteratively (no JS recursion, so no stack overflow) and refuse a container that
 * contains itself or a longest path of containers over maxDepth (shared values included, so a caller's recursive
 * walk is bounded by maxDepth too). Each container is visited once.
 */
export function checkGraph(file: string, root: unknown, maxDepth: number): void {
  const height = new Map<unknown, number>(); // finished containers: longest chain of containers below, itself included
  const onPath = new Set<unknown>();
  const path: { node: unknown; kids: unknown[]; next: number; height: number }[] = [];
  const tooDeep = (): never => {
    throw new TorchCheckpointError(file, `data.pkl: objects nested deeper than ${maxDepth} levels (budgets.maxDepth)`);
  };
  // Visit v as a child of the top frame: either fold in its known height or descend into it.
  const visit = (v: unknown): void => {
    const kids = children(v);
    if (kids === undefined) return;
    const h = height.get(v);
    if (h !== undefined) {
      const parent = path[path.length - 1];
      if (parent && h + 1 > parent.height) parent.height = h + 1;
      if (path.length + h > maxDepth) tooDeep();
      return;
    }
    if (onPath.has(v)) throw new TorchCheckpointError(file, `data.pkl: ${describe(v)} contains itself (a reference cycle); refusing it`);
    if (path.length >= maxDepth) tooDeep();
    onPath.add(v);
    path.push({ node: v, kids, next: 0, height: 1 });
  };
  visit(root);
  while (path.length > 0) {
    const top = path[path.length - 1]!;
    if (top.next < top.kids.length) {
      visit(top.kids[top.next++]);
      continue;
    }
    path.pop();
    onPath.delete(top.node);
    height.set(top.node, top.height);
    const parent = path[path.length - 1];
    if (parent && top.height + 1 > parent.height) parent.height = top.height + 1;
  }
}

/** Interpret a pickle (protocols 0-5 binary subset used by torch.save). Never executes anything. */
export function unpickle(data: Uint8Array, ctx: PickleContext): unknown {
  const { file, budget } = ctx;
  const globals = makeGlobals(budget);
  let objects = 0;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const memo = new Map<number, unknown>();
  const metastack: unknown[][] = [];
  let stack: unknown[] = [];
  let pos = 0;
  let opPos = 0;

  const fail = (msg: string): never => {
    throw new TorchCheckpointError(file, `data.pkl at byte ${opPos}: ${msg}`);
  };
  const need = (n: number): void => { if (pos + n > data.length) fail('unexpected end of pickle'); };
  const u8 = (): number => { need(1); return data[pos++]!; };
  const u16 = (): number => { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64n = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => { need(n); const b = data.subarray(pos, pos + n); pos += n; return b; };
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const str = (n: number): string => {
    try { return utf8.decode(bytes(n)); } catch { return fail('invalid UTF-8 string'); }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text line');
    const s = Buffer.from(data.buffer, data.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => { if (stack.length === 0) fail('stack underflow'); return stack.pop(); };
  const top = (): unknown => { if (stack.length === 0) fail('stack underflow'); return stack[stack.length - 1]; };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) fail('MARK missing');
    stack = prev!;
    return items;
  };
  const findGlobal = (module: string, name: string): unknown => {
    const g = globals.get(`${module}.${name}`);
    if (!g && ctx.allowUnknownGlobals) return new PyOpaque(`${module}.${name}`);
    if (!g) fail(`refusing to load global '${module}.${name}' (only tensors, storages and OrderedDict are allowed; `
      + 'allowUnknownGlobals loads such objects as inert placeholders)');
    return g;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (fn instanceof PyOpaque) {
      const o = new PyOpaque(fn.qualname);
      o.args = Array.isArray(args) ? args : [args];
      return o;
    }
    if (!(fn instanceof PyCallable)) return fail(`cannot call ${describe(fn)}`);
    if (!Array.isArray(args)) return fail(`arguments to ${fn.qualname} must be a tuple, got ${describe(args)}`);
    return fn.call(args);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM(S) on ${describe(target)}`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as PyDict).set(items[i], items[i + 1]);
  };
  const long = (b: Uint8Array): number | bigint => {
    // Two's complement little-endian of arbitrary length.
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length > 0 && (b[b.length - 1]! & 0x80)) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    if (!NON_CREATING_OPS.has(op) && ++objects > budget.maxObjects) {
      fail(`more than ${budget.maxObjects} pickle values (budgets.maxObjects); refusing to build them`);
    }
    switch (op) {
      case 0x80: { const proto = u8(); if (proto > 5) fail(`unsupported pickle protocol ${proto}`); break; } // PROTO
      case 0x95: u64n(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || metastack.length !== 0) fail(`STOP with ${stack.length} items on the stack`);
        checkGraph(file, stack[0], budget.maxDepth);
        return stack[0];
      }
      case 0x28: { // MARK
        if (metastack.length >= budget.maxDepth) fail(`more than ${budget.maxDepth} nested MARKs (budgets.maxDepth)`);
        metastack.push(stack);
        stack = [];
        break;
      }
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(bytes(u8()))); break; // LONG1
      case 0x8b: { const n = u32(); if (n > 64) fail(`LONG4 of ${n} bytes`); stack.push(long(bytes(n))); break; }
      case 0x47: { need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64n())); break; // BINUNICODE8
      case 0x54: { const n = i32(); if (n < 0) fail('negative BINSTRING length'); stack.push(Buffer.from(bytes(n)).toString('latin1')); break; }
      case 0x55: stack.push(Buffer.from(bytes(u8())).toString('latin1')); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      // Note: `stack.push(popMark())` would push onto the inner stack (the receiver is evaluated first).
      case 0x74: case 0x6c: { const items = popMark(); stack.push(items); break; } // TUPLE, LIST
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fail('APPEND to a non-list'); (l as unknown[]).push(v); break; }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS to a non-list');
        for (const it of items) (l as unknown[]).push(it);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x63: { const module = line(); const name = line(); stack.push(findGlobal(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(findGlobal(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.attrs = state; // e.g. OrderedDict state_dict carrying `_metadata`
        else if (obj instanceof PyOpaque) obj.state = state;
        else fail(`BUILD on ${describe(obj)} is not supported`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') fail(`unsupported persistent id ${describe(pid)}`);
        const [, type, key, , numel] = pid as unknown[];
        if (!(type instanceof StorageType)) fail(`persistent id storage type ${describe(type)} is not supported`);
        if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
          fail(`malformed storage persistent id ${describe(pid)}`);
        }
        stack.push(ctx.loadStorage(type as StorageType, key as string, numel as number));
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { const n = Number(line()); if (!Number.isSafeInteger(n)) fail('bad PUT index'); memo.set(n, top()); break; }
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
