import { isIP } from 'node:net';
import type { AddressInfo, ConnectionId, Engine, EngineHandler, ListenerId } from '@fastport/native-io';

/*
 * PROXY protocol (HAProxy's proxy-protocol.txt), versions 1 and 2, on the
 * accepting side: a balancer in front of the server writes one header at the
 * start of each connection naming the client it accepted. The header is
 * consumed here, before framing, and the session is opened with the client's
 * address instead of the balancer's.
 */

/** v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const PROXY_V2_SIGNATURE = Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Uint8Array.from([0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]); // "PROXY "
/** The spec's bound for a v1 line, CRLF included ("PROXY UNKNOWN" with two IPv6 addresses and ports). */
export const PROXY_V1_MAX_BYTES = 107;
const V2_FIXED = 16;
/** Default bound for a v2 header (16 bytes + addresses + TLVs); the wire allows up to 16 + 65,535. */
export const DEFAULT_PROXY_MAX_HEADER_BYTES = 4096;
export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5_000;
const EMPTY = new Uint8Array(0);

export interface ProxyProtocolOptions {
  /** A connection that has not sent a complete header this long is closed ('proxy-timeout'). Default 5,000 ms. */
  headerTimeoutMs?: number;
  /** Largest v2 header accepted (TLVs included); more closes the connection ('proxy-oversize'). Default 4,096. */
  maxHeaderBytes?: number;
}

/** What a complete header said. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * 'proxy': relayed for a client, `source`/`destination` are set;
   * 'local': the balancer's own connection (health check) — use the real address;
   * 'unknown': v1 UNKNOWN or v2 with an unspecified or non-TCP family — use the real address.
   */
  command: 'proxy' | 'local' | 'unknown';
  source?: AddressInfo;
  destination?: AddressInfo;
  /** Header bytes consumed. */
  length: number;
}

export type ProxyRejectReason = 'proxy-malformed' | 'proxy-oversize' | 'proxy-timeout' | 'proxy-missing';

export class ProxyProtocolError extends Error {
  constructor(
    readonly reason: ProxyRejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'ProxyProtocolError';
  }
}

/** `incomplete`: more bytes are needed (`need` is at least how many more). */
export type ProxyParseResult = { kind: 'header'; header: ProxyHeader } | { kind: 'incomplete' } | { kind: 'error'; error: ProxyProtocolError };

function fail(reason: ProxyRejectReason, message: string): ProxyParseResult {
  return { kind: 'error', error: new ProxyProtocolError(reason, message) };
}

/** True when `buf` so far agrees with `sig`'s first bytes. */
function agrees(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return true;
}

/**
 * Parses a PROXY header at the start of `buf` (everything received so far).
 * Decides as early as the bytes allow: a first byte that starts neither
 * version is refused at once, so a peer that speaks the application protocol
 * directly is closed without waiting for the timeout.
 */
export function parseProxyHeader(buf: Uint8Array, maxHeaderBytes = DEFAULT_PROXY_MAX_HEADER_BYTES): ProxyParseResult {
  if (buf.length === 0) return { kind: 'incomplete' };
  if (agrees(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? { kind: 'incomplete' } : parseV1(buf);
  if (agrees(buf, PROXY_V2_SIGNATURE)) return buf.length < V2_FIXED ? { kind: 'incomplete' } : parseV2(buf, maxHeaderBytes);
  return fail('proxy-missing', 'connection did not start with a PROXY protocol header');
}

function parseV1(buf: Uint8Array): ProxyParseResult {
  const limit = Math.min(buf.length, PROXY_V1_MAX_BYTES);
  let lf = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (buf[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf < 0) {
    return buf.length >= PROXY_V1_MAX_BYTES ? fail('proxy-oversize', `PROXY v1 line longer than ${PROXY_V1_MAX_BYTES} bytes`) : { kind: 'incomplete' };
  }
  if (buf[lf - 1] !== 0x0d) return fail('proxy-malformed', 'PROXY v1 line does not end with CRLF');
  const length = lf + 1;
  // Only printable US-ASCII may appear in the line; anything else is not a header.
  for (let i = 0; i < lf - 1; i++) {
    const c = buf[i]!;
    if (c < 0x20 || c > 0x7e) return fail('proxy-malformed', 'PROXY v1 line has a non-printable byte');
  }
  const line = Buffer.from(buf.buffer, buf.byteOffset, lf - 1).toString('latin1');
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') return { kind: 'header', header: { version: 1, command: 'unknown', length } };
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail('proxy-malformed', `PROXY v1 protocol '${proto ?? ''}' is not TCP4, TCP6 or UNKNOWN`);
  if (parts.length !== 6) return fail('proxy-malformed', 'PROXY v1 line needs exactly: PROXY proto src dst sport dport');
  const family = proto === 'TCP4' ? 4 : 6;
  const [src, dst, sport, dport] = [parts[2]!, parts[3]!, parts[4]!, parts[5]!];
  if (isIP(src) !== family || isIP(dst) !== family) return fail('proxy-malformed', `PROXY v1 addresses are not ${proto} addresses`);
  const sp = v1Port(sport);
  const dp = v1Port(dport);
  if (sp < 0 || dp < 0) return fail('proxy-malformed', 'PROXY v1 ports must be decimal 0..65535 without leading zeros');
  const fam = family === 4 ? 'IPv4' : 'IPv6';
  return {
    kind: 'header',
    header: { version: 1, command: 'proxy', source: { address: src, port: sp, family: fam }, destination: { address: dst, port: dp, family: fam }, length },
  };
}

function v1Port(s: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function parseV2(buf: Uint8Array, maxHeaderBytes: number): ProxyParseResult {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return fail('proxy-malformed', `PROXY v2 version ${verCmd >> 4} is not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return fail('proxy-malformed', `PROXY v2 command ${cmd} is neither LOCAL nor PROXY`);
  const famProto = buf[13]!;
  const fam = famProto >> 4;
  const transport = famProto & 0x0f;
  if (fam > 3 || transport > 2) return fail('proxy-malformed', `PROXY v2 family/transport 0x${famProto.toString(16)} is not defined`);
  const rest = (buf[14]! << 8) | buf[15]!;
  const length = V2_FIXED + rest;
  if (length > maxHeaderBytes) return fail('proxy-oversize', `PROXY v2 header of ${length} bytes passes the limit of ${maxHeaderBytes}`);
  const need = fam === 1 ? 12 : fam === 2 ? 36 : fam === 3 ? 216 : 0;
  if (rest < need) return fail('proxy-malformed', `PROXY v2 address block of ${rest} bytes is shorter than the family's ${need}`);
  if (buf.length < length) return { kind: 'incomplete' };
  if (cmd === 0) return { kind: 'header', header: { version: 2, command: 'local', length } };
  // Only TCP over IPv4/IPv6 names a peer a TCP session can use; the rest keeps the real address.
  if (transport !== 1 || (fam !== 1 && fam !== 2)) return { kind: 'header', header: { version: 2, command: 'unknown', length } };
  // Addresses, then ports: 4 + 4 + 2 + 2 bytes for TCP4, 16 + 16 + 2 + 2 for TCP6.
  const v4 = fam === 1;
  const size = v4 ? 4 : 16;
  const text = (o: number) => (v4 ? `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}` : ipv6Text(buf.subarray(o, o + 16)));
  const port = (o: number) => (buf[o]! << 8) | buf[o + 1]!;
  const family = v4 ? 'IPv4' : 'IPv6';
  const ports = V2_FIXED + 2 * size;
  return {
    kind: 'header',
    header: {
      version: 2,
      command: 'proxy',
      source: { address: text(V2_FIXED), port: port(ports), family },
      destination: { address: text(V2_FIXED + size), port: port(ports + 2), family },
      length,
    },
  };
}

/** RFC 5952 text of 16 address bytes (the longest run of 2+ zero groups becomes '::'). */
export function ipv6Text(b: Uint8Array): string {
  // IPv4-mapped (::ffff:a.b.c.d) in the mixed notation, as Node prints a v4 peer on a dual-stack socket.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

export interface ProxyProtocolStats {
  /** Connections whose header was accepted, by kind. */
  accepted: { proxy: number; local: number; unknown: number };
  /** Connections closed before a session, by reason. */
  rejected: Record<ProxyRejectReason, number>;
  /** Connections waiting for their header now. */
  pending: number;
}

interface Pending {
  listener: ListenerId;
  real: AddressInfo;
  deadline: number;
  /** Bytes received so far in `buf[0..len)` (copied: engine views die with their batch); grows by doubling. */
  buf: Uint8Array;
  len: number;
}

/**
 * Wraps the host's engine handler: a new connection is held (no session yet)
 * until its PROXY header is complete, then announced to `inner` with the
 * client's address and whatever followed the header. A connection whose
 * header is missing, malformed, oversized or late is closed (abort) and
 * counted by reason; it never reaches the session layer.
 */
export class ProxyProtocolGate {
  private readonly pending = new Map<ConnectionId, Pending>();
  /** Closed here: their onClose must not reach the inner handler. */
  private readonly dropped = new Set<ConnectionId>();
  private readonly timeoutMs: number;
  private readonly maxHeaderBytes: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly counts: ProxyProtocolStats = {
    accepted: { proxy: 0, local: 0, unknown: 0 },
    rejected: { 'proxy-malformed': 0, 'proxy-oversize': 0, 'proxy-timeout': 0, 'proxy-missing': 0 },
    pending: 0,
  };

  constructor(
    private readonly inner: EngineHandler,
    private readonly engine: () => Engine,
    options: ProxyProtocolOptions,
    private readonly onReject: (remote: AddressInfo, error: ProxyProtocolError) => void = () => {},
  ) {
    this.timeoutMs = options.headerTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_PROXY_MAX_HEADER_BYTES;
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs < 1) throw new RangeError(`proxyProtocol.headerTimeoutMs must be a positive integer (got ${this.timeoutMs})`);
    if (!Number.isSafeInteger(this.maxHeaderBytes) || this.maxHeaderBytes < V2_FIXED + 12) {
      throw new RangeError(`proxyProtocol.maxHeaderBytes must be an integer >= ${V2_FIXED + 12} (got ${this.maxHeaderBytes})`);
    }
  }

  stats(): ProxyProtocolStats {
    return { accepted: { ...this.counts.accepted }, rejected: { ...this.counts.rejected }, pending: this.pending.size };
  }

  /** The handler the engine calls. */
  handler(): EngineHandler {
    const inner = this.inner;
    return {
      ...inner,
      onAccept: (conn, listener, remote) => {
        this.pending.set(conn, { listener, real: remote, deadline: Date.now() + this.timeoutMs, buf: EMPTY, len: 0 });
        this.arm();
      },
      onData: (conn, data) => {
        const p = this.pending.get(conn);
        if (p === undefined) {
          if (!this.dropped.has(conn)) inner.onData(conn, data);
          return;
        }
        this.feed(conn, p, data);
      },
      onEnd: (conn) => {
        const p = this.pending.get(conn);
        if (p !== undefined) this.reject(conn, p, new ProxyProtocolError('proxy-malformed', 'connection half-closed before its PROXY header was complete'));
        else if (!this.dropped.has(conn)) inner.onEnd?.(conn);
      },
      onDrain: (conn) => {
        if (!this.pending.has(conn) && !this.dropped.has(conn)) inner.onDrain?.(conn);
      },
      onClose: (conn, info) => {
        if (this.pending.delete(conn)) return; // closed by the peer while its header was pending
        if (this.dropped.delete(conn)) return;
        inner.onClose(conn, info);
      },
    };
  }

  private feed(conn: ConnectionId, p: Pending, data: Uint8Array): void {
    // Bound what a slow or lying peer can make us hold, whatever its header claims; a peer that
    // trickles bytes one at a time costs amortised O(1) copying per byte, not a copy of all so far.
    const keep = Math.min(data.length, this.maxHeaderBytes + 1 - p.len);
    const need = p.len + keep;
    if (need > p.buf.length) {
      const grown = new Uint8Array(Math.min(this.maxHeaderBytes + 1, Math.max(need, p.buf.length * 2, 128)));
      grown.set(p.buf.subarray(0, p.len), 0);
      p.buf = grown;
    }
    p.buf.set(keep === data.length ? data : data.subarray(0, keep), p.len);
    p.len = need;
    const seen = p.buf.subarray(0, p.len);
    const r = parseProxyHeader(seen, this.maxHeaderBytes);
    if (r.kind === 'incomplete') {
      if (p.len > this.maxHeaderBytes) this.reject(conn, p, new ProxyProtocolError('proxy-oversize', `no complete PROXY header within ${this.maxHeaderBytes} bytes`));
      return;
    }
    if (r.kind === 'error') {
      this.reject(conn, p, r.error);
      return;
    }
    const h = r.header;
    this.pending.delete(conn);
    this.counts.accepted[h.command]++;
    this.inner.onAccept(conn, p.listener, h.command === 'proxy' && h.source !== undefined ? h.source : p.real);
    // What followed the header: from our copy, plus whatever of this read did not fit in it.
    if (p.len > h.length) this.inner.onData(conn, seen.subarray(h.length));
    if (keep < data.length) this.inner.onData(conn, data.subarray(keep));
  }

  private reject(conn: ConnectionId, p: Pending, error: ProxyProtocolError): void {
    this.pending.delete(conn);
    this.dropped.add(conn);
    this.counts.rejected[error.reason]++;
    this.onReject(p.real, error);
    this.engine().close(conn, 'abort');
  }

  /** One timer for all pending connections: they share a timeout, so the map's order is deadline order. */
  private arm(): void {
    if (this.timer !== undefined || this.pending.size === 0) return;
    const first = this.pending.values().next().value as Pending;
    this.timer = setTimeout(() => this.expire(), Math.max(1, first.deadline - Date.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [conn, p] of this.pending) {
      if (p.deadline > now) break;
      this.reject(conn, p, new ProxyProtocolError('proxy-timeout', `no complete PROXY header within ${this.timeoutMs} ms`));
    }
    this.arm();
  }

  /** Stops the timer (the engine is going away). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
