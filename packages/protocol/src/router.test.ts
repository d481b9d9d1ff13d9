import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import {
  BenchmarkRequest,
  BenchmarkResponse,
  EchoRequest,
  EchoResponse,
  ErrorResponse,
  PacketId,
  PacketRegistry,
  PingRequest,
  PingResponse,
  ProtocolError,
  ResultCode,
  Router,
  decodePacket,
  detachBytes,
  encodeMessage,
  send,
  type RouterErrorEvent,
  type RouterSession,
} from './index';

interface Sent {
  id: number;
  payload: Uint8Array;
}

class MockSession implements RouterSession {
  readonly sent: Sent[] = [];
  closedWith: string | undefined;
  closeCount = 0;
  user = 'alice';
  failSend = false;

  constructor(readonly id = 1) {}

  send(payload: Uint8Array, packetId: number): boolean {
    if (this.failSend) throw new Error('socket closed');
    this.sent.push({ id: packetId, payload: payload.slice() });
    return true;
  }

  close(reason?: string): void {
    this.closeCount++;
    this.closedWith = reason ?? '';
  }

  /** The only packet sent, decoded. */
  only(): { id: number; name: string; message: unknown } {
    expect(this.sent).toHaveLength(1);
    const p = this.sent[0]!;
    return decodePacket(p.id, p.payload);
  }
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const GARBAGE = bytes(0xff, 0xff, 0xff, 0xff, 0x0f);

function errorReply(s: MockSession): ErrorResponse {
  const d = s.only();
  expect(d.id).toBe(PacketId.ErrorResponse);
  return d.message as ErrorResponse;
}

describe('Router: handlers', () => {
  it('calls the typed handler with the decoded message and can reply', () => {
    const router = new Router<MockSession>();
    const seen: Array<[number, EchoRequest, number]> = [];
    router.on(EchoRequest, (session, msg, packetId) => {
      expectTypeOf(msg).toEqualTypeOf<EchoRequest>();
      expectTypeOf(session).toEqualTypeOf<MockSession>();
      seen.push([session.id, msg, packetId]);
      router.reply(session, EchoResponse, { data: msg.data, seq: msg.seq + 1 });
    });
    const s = new MockSession(42);
    const result = router.dispatch(s, PacketId.EchoRequest, encodeMessage(EchoRequest, { data: bytes(5, 6), seq: 9 }));
    expect(result).toBe('handled');
    expect(seen).toEqual([[42, { data: bytes(5, 6), seq: 9 }, PacketId.EchoRequest]]);
    const reply = s.only();
    expect(reply.id).toBe(PacketId.EchoResponse);
    expect(reply.message).toEqual({ data: bytes(5, 6), seq: 10 });
    expect(router.stats).toMatchObject({ dispatched: 1, handled: 1, unknown: 0, decodeErrors: 0, handlerErrors: 0 });
  });

  it('routes each id to its own handler', () => {
    const router = new Router();
    const calls: string[] = [];
    router
      .on(PingRequest, (_s, m) => void calls.push(`ping ${m.seq}`))
      .on(BenchmarkRequest, (_s, m) => void calls.push(`bench ${m.seq} ${m.payload.length}`));
    const s = new MockSession();
    router.dispatch(s, 0x1001, encodeMessage(BenchmarkRequest, { seq: 3, payload: new Uint8Array(100) }));
    router.dispatch(s, 0x0001, encodeMessage(PingRequest, { seq: 4 }));
    expect(calls).toEqual(['bench 3 100', 'ping 4']);
    expect(s.sent).toHaveLength(0);
  });

  it('rejects a second handler for the same type and an unregistered type', () => {
    const router = new Router();
    router.on(EchoRequest, () => {});
    expect(() => router.on(EchoRequest, () => {})).toThrow(ProtocolError);
    expect(router.off(EchoRequest)).toBe(true);
    expect(router.handles(EchoRequest)).toBe(false);
    router.on(EchoRequest, () => {});
    expect(router.handles(EchoRequest)).toBe(true);

    const small = new Router({ registry: new PacketRegistry([[PingRequest, 1]]) });
    try {
      small.on(EchoRequest, () => {});
      expect.unreachable();
    } catch (e) {
      expect((e as ProtocolError).code).toBe('ERR_UNREGISTERED_TYPE');
    }
  });

  it('uses a custom registry', () => {
    const registry = new PacketRegistry([
      [PingRequest, 0x8001],
      [ErrorResponse, 0x8fff],
    ]);
    const router = new Router({ registry });
    const got: number[] = [];
    router.on(PingRequest, (_s, m) => void got.push(m.seq));
    const s = new MockSession();
    expect(router.dispatch(s, 0x8001, encodeMessage(PingRequest, { seq: 8 }))).toBe('handled');
    expect(got).toEqual([8]);
    // The default id of PingRequest is unknown here, and errors go out under the custom ErrorResponse id.
    expect(router.dispatch(s, PacketId.PingRequest, new Uint8Array(0))).toBe('unknown');
    expect(s.sent[0]?.id).toBe(0x8fff);
  });
});

describe('Router: unknown packets', () => {
  it('answers an unknown id with ErrorResponse{UNKNOWN_PACKET, packetId}', () => {
    const router = new Router();
    const s = new MockSession();
    expect(router.dispatch(s, 0x7abc, bytes(1, 2, 3))).toBe('unknown');
    const err = errorReply(s);
    expect(err.code).toBe(ResultCode.UNKNOWN_PACKET);
    expect(err.packetId).toBe(0x7abc);
    expect(err.message).toContain('0x7ABC');
    expect(s.closeCount).toBe(0);
    expect(router.stats).toMatchObject({ dispatched: 1, unknown: 1, errorReplies: 1, handled: 0 });
  });

  it('answers a registered id without handler the same way, counted as unhandled', () => {
    const router = new Router();
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.PingRequest, encodeMessage(PingRequest, { seq: 1 }))).toBe('unhandled');
    const err = errorReply(s);
    expect(err.code).toBe(ResultCode.UNKNOWN_PACKET);
    expect(err.packetId).toBe(PacketId.PingRequest);
    expect(err.message).toContain('fastport.PingRequest');
    expect(router.stats).toMatchObject({ unhandled: 1, unknown: 0 });
  });

  it("closes with onUnknown 'close' and stays silent with 'ignore'", () => {
    const closing = new Router({ onUnknown: 'close' });
    const a = new MockSession();
    expect(closing.dispatch(a, 0x7000, new Uint8Array(0))).toBe('unknown');
    expect(a.closeCount).toBe(1);
    expect(a.closedWith).toMatch(/unknown packet id 0x7000/);
    expect(a.sent).toHaveLength(0);
    expect(closing.stats.closed).toBe(1);

    const ignoring = new Router({ onUnknown: 'ignore' });
    const b = new MockSession();
    expect(ignoring.dispatch(b, 0x7000, new Uint8Array(0))).toBe('unknown');
    expect(b.closeCount).toBe(0);
    expect(b.sent).toHaveLength(0);
    expect(ignoring.stats.unknown).toBe(1);
  });

  it('never answers an ErrorResponse with an ErrorResponse', () => {
    const router = new Router();
    const s = new MockSession();
    const payload = encodeMessage(ErrorResponse, { code: ResultCode.UNKNOWN_PACKET, packetId: 5 });
    expect(router.dispatch(s, PacketId.ErrorResponse, payload)).toBe('unhandled');
    expect(s.sent).toHaveLength(0);
    expect(router.stats.errorReplies).toBe(0);
  });
});

describe('Router: decode errors', () => {
  it('answers a garbage payload with ErrorResponse{DECODE_ERROR} and does not call the handler', () => {
    const router = new Router();
    const handler = vi.fn();
    router.on(EchoRequest, handler);
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.EchoRequest, GARBAGE)).toBe('decode_error');
    expect(handler).not.toHaveBeenCalled();
    const err = errorReply(s);
    expect(err.code).toBe(ResultCode.DECODE_ERROR);
    expect(err.packetId).toBe(PacketId.EchoRequest);
    expect(err.message).toContain('fastport.EchoRequest');
    expect(s.closeCount).toBe(0);
    expect(router.stats).toMatchObject({ decodeErrors: 1, handled: 0, errorReplies: 1 });
  });

  it('treats a truncated payload as a decode error', () => {
    const router = new Router();
    router.on(EchoRequest, () => {});
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.EchoRequest, bytes(0x0a, 0x05, 0x01))).toBe('decode_error');
    expect(errorReply(s).code).toBe(ResultCode.DECODE_ERROR);
  });

  it("closes the session with onDecodeError 'close'", () => {
    const router = new Router({ onDecodeError: 'close' });
    router.on(EchoRequest, () => {});
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.EchoRequest, GARBAGE)).toBe('decode_error');
    expect(s.closeCount).toBe(1);
    expect(s.closedWith).toMatch(/cannot decode packet 0x0003/);
    expect(s.sent).toHaveLength(0);
    expect(router.stats).toMatchObject({ decodeErrors: 1, closed: 1, errorReplies: 0 });
  });
});

describe('Router: handler errors', () => {
  it('answers a throwing handler with INTERNAL, reports it, and keeps working', () => {
    const events: RouterErrorEvent<MockSession>[] = [];
    const router = new Router<MockSession>({ onError: (e) => events.push(e) });
    let calls = 0;
    router.on(EchoRequest, (session, msg) => {
      calls++;
      if (msg.seq === 1) throw new Error('boom secret');
      router.reply(session, EchoResponse, { seq: msg.seq });
    });
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.EchoRequest, encodeMessage(EchoRequest, { seq: 1 }))).toBe('handler_error');
    const err = errorReply(s);
    expect(err.code).toBe(ResultCode.INTERNAL);
    expect(err.packetId).toBe(PacketId.EchoRequest);
    expect(err.message).not.toContain('secret');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'handler', packetId: 3, name: 'fastport.EchoRequest', action: 'reply' });
    expect((events[0]?.error as Error).message).toBe('boom secret');
    expect(events[0]?.session).toBe(s);

    s.sent.length = 0;
    expect(router.dispatch(s, PacketId.EchoRequest, encodeMessage(EchoRequest, { seq: 2 }))).toBe('handled');
    expect(s.only()).toMatchObject({ id: PacketId.EchoResponse, message: { seq: 2 } });
    expect(calls).toBe(2);
    expect(router.stats).toMatchObject({ dispatched: 2, handled: 1, handlerErrors: 1 });
  });

  it('exposes the error message only when asked', () => {
    const router = new Router({ exposeHandlerErrors: true });
    router.on(PingRequest, () => {
      throw new Error('db down');
    });
    const s = new MockSession();
    router.dispatch(s, PacketId.PingRequest, new Uint8Array(0));
    expect(errorReply(s).message).toContain('db down');
  });

  it('answers a rejected async handler with INTERNAL', async () => {
    let reported!: (e: RouterErrorEvent) => void;
    const done = new Promise<RouterErrorEvent>((resolve) => (reported = resolve));
    const router = new Router({ onError: (e) => reported(e) });
    router.on(PingRequest, async (_s, msg) => {
      await Promise.resolve();
      if (msg.seq === 1) throw new Error('later');
    });
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.PingRequest, encodeMessage(PingRequest, { seq: 1 }))).toBe('pending');
    expect(router.stats.pending).toBe(1);
    expect(s.sent).toHaveLength(0);
    const event = await done;
    expect(event.kind).toBe('handler');
    expect(errorReply(s)).toMatchObject({ code: ResultCode.INTERNAL, packetId: PacketId.PingRequest });
    expect(router.stats).toMatchObject({ pending: 0, handlerErrors: 1, handled: 0 });

    // A resolving async handler counts as handled once it settles.
    expect(router.dispatch(s, PacketId.PingRequest, encodeMessage(PingRequest, { seq: 2 }))).toBe('pending');
    await new Promise((r) => setImmediate(r));
    expect(router.stats).toMatchObject({ pending: 0, handled: 1, handlerErrors: 1 });
  });

  it("closes with onHandlerError 'close'", () => {
    const router = new Router({ onHandlerError: 'close' });
    router.on(PingRequest, () => {
      throw new Error('x');
    });
    const s = new MockSession();
    expect(router.dispatch(s, PacketId.PingRequest, new Uint8Array(0))).toBe('handler_error');
    expect(s.closeCount).toBe(1);
    expect(s.sent).toHaveLength(0);
  });

  it('never throws: failing send, failing close and a throwing onError hook are absorbed', () => {
    const kinds: string[] = [];
    const router = new Router({
      onError: (e) => {
        kinds.push(e.kind);
        throw new Error('hook fails too');
      },
    });
    router.on(PingRequest, () => {
      throw new Error('handler fails');
    });
    const s = new MockSession();
    s.failSend = true;
    expect(() => router.dispatch(s, 0x7777, new Uint8Array(0))).not.toThrow();
    expect(() => router.dispatch(s, PacketId.PingRequest, new Uint8Array(0))).not.toThrow();
    expect(kinds).toEqual(['send', 'unknown', 'send', 'handler']);
    expect(router.stats).toMatchObject({ sendErrors: 2, errorReplies: 0, unknown: 1, handlerErrors: 1 });

    const closing = new Router({ onUnknown: 'close' });
    const t = new MockSession();
    t.close = () => {
      throw new Error('already closed');
    };
    expect(closing.dispatch(t, 0x7777, new Uint8Array(0))).toBe('unknown');
    expect(closing.stats.sendErrors).toBe(1);
  });

  it('resetStats zeroes the counters', () => {
    const router = new Router();
    router.dispatch(new MockSession(), 0x7777, new Uint8Array(0));
    expect(router.stats.unknown).toBe(1);
    router.resetStats();
    expect(router.stats).toEqual({
      dispatched: 0,
      handled: 0,
      pending: 0,
      unknown: 0,
      unhandled: 0,
      decodeErrors: 0,
      handlerErrors: 0,
      errorReplies: 0,
      closed: 0,
      sendErrors: 0,
    });
  });
});

describe('Router: decoded messages do not alias the input', () => {
  it('a bytes field kept by a handler survives mutation of the dispatch buffer', () => {
    const router = new Router();
    const kept: BenchmarkRequest[] = [];
    router.on(BenchmarkRequest, (_s, msg) => void kept.push(msg));
    // The payload is a view into a bigger buffer, as an engine would hand it over.
    const engineMemory = new Uint8Array(256);
    const encoded = encodeMessage(BenchmarkRequest, { seq: 1, clientTimeNs: 5n, payload: bytes(10, 20, 30, 40) });
    engineMemory.set(encoded, 16);
    const view = engineMemory.subarray(16, 16 + encoded.length);
    expect(router.dispatch(new MockSession(), PacketId.BenchmarkRequest, view)).toBe('handled');
    engineMemory.fill(0xee);
    expect(kept).toHaveLength(1);
    expect([...kept[0]!.payload]).toEqual([10, 20, 30, 40]);
    expect(kept[0]!.payload.buffer).not.toBe(engineMemory.buffer);
    expect(kept[0]!.seq).toBe(1);
  });

  it('detachBytes copies nested and repeated views and leaves foreign arrays alone', () => {
    const input = bytes(1, 2, 3, 4, 5, 6);
    const foreign = bytes(9);
    const msg = {
      a: input.subarray(0, 2),
      nested: { b: input.subarray(2, 4), list: [input.subarray(4, 6), foreign] },
      n: 1,
      s: 'x',
      none: undefined,
    };
    detachBytes(msg, input);
    input.fill(0);
    expect([...msg.a]).toEqual([1, 2]);
    expect([...msg.nested.b]).toEqual([3, 4]);
    expect([...msg.nested.list[0]!]).toEqual([5, 6]);
    expect(msg.nested.list[1]).toBe(foreign);
  });
});

describe('send helpers', () => {
  it('send() and router.send() encode partial messages with the registry id', () => {
    const s = new MockSession();
    const r1 = send(s, PingResponse, { seq: 3 });
    expectTypeOf(r1).toEqualTypeOf<boolean>();
    expect(r1).toBe(true);
    const router = new Router<MockSession>();
    router.send(s, BenchmarkResponse, { seq: 4, payload: bytes(1) });
    expect(s.sent.map((p) => p.id)).toEqual([PacketId.PingResponse, PacketId.BenchmarkResponse]);
    expect(decodePacket(s.sent[0]!.id, s.sent[0]!.payload).message).toEqual({ clientTimeUs: 0n, serverTimeUs: 0n, seq: 3 });
    expect(decodePacket(s.sent[1]!.id, s.sent[1]!.payload).message).toEqual({
      seq: 4,
      clientTimeNs: 0n,
      payload: bytes(1),
      serverTimeNs: 0n,
    });
  });

  it('type errors are caught at compile time', () => {
    const router = new Router<MockSession>();
    router.on(EchoRequest, (_s, msg) => {
      // @ts-expect-error EchoRequest has no `payload`
      void msg.payload;
    });
    const s = new MockSession();
    // @ts-expect-error wrong field type
    expect(() => router.send(s, PingRequest, { seq: 'one' })).toBeDefined();
  });
});
