/**
 * Session control frames: heartbeat, GOAWAY, resume handshake and acks.
 *
 * They travel as ordinary frames of the session's framing, under packet ids
 * reserved for the session layer: **0xFF00–0xFF0F** (16 ids). The session
 * layer consumes them; applications never see them and must not send them.
 * The payload is a small hand-written big-endian binary encoding (no
 * protobuf: the session layer depends on nothing but native-io).
 *
 * Control frames need a framing with a packet id field of at least 2 bytes
 * (`fastport`, `large`, or a custom spec with `idWidth` 2 or 4). `u32le` has
 * no id, so heartbeat, resume and GOAWAY are unavailable there (options that
 * need them throw ERR_INVALID_ARGUMENT when the host is constructed).
 *
 * | id     | frame           | payload (big-endian)                                                      |
 * |--------|-----------------|---------------------------------------------------------------------------|
 * | 0xFF00 | HELLO           | reserved (not sent yet)                                                   |
 * | 0xFF01 | PING            | u32 nonce                                                                 |
 * | 0xFF02 | PONG            | u32 nonce (the PING's)                                                    |
 * | 0xFF03 | GOAWAY          | u8 reason, u8 flags (1 = reconnect ok, 2 = resume ok), u32 deadline ms, u16 n, n bytes UTF-8 text |
 * | 0xFF04 | RESUME_REQUEST  | u8 version=1, u8 flags (1 = history unknown), 16 B token (zero = new), u64 received, u64 first replayable seq |
 * | 0xFF05 | RESUME_OK       | u8 version=1, u8 flags (1 = resumed), 16 B token, u64 received, u32 server session id |
 * | 0xFF06 | RESUME_REFUSED  | u8 version=1, u8 reason, u64 received (2^53-1 = unknown), u64 lost from, u64 lost to, u64 peer-lost from, u64 peer-lost to, u16 n, n bytes UTF-8 text |
 * | 0xFF07 | ACK             | u64 received (count of the peer's application frames delivered here)      |
 * | 0xFF08–0xFF0F | —        | reserved                                                                  |
 *
 * u64 fields carry integers up to 2^53-1 (high u32 then low u32). Decoders
 * accept (and ignore) trailing bytes, so later versions can append fields;
 * a payload shorter than its fixed part is malformed and closes the session
 * with reason 'control-malformed'.
 */

export const CONTROL_ID_FIRST = 0xff00;
export const CONTROL_ID_LAST = 0xff0f;

export const ControlFrameId = {
  Hello: 0xff00,
  Ping: 0xff01,
  Pong: 0xff02,
  GoAway: 0xff03,
  ResumeRequest: 0xff04,
  ResumeOk: 0xff05,
  ResumeRefused: 0xff06,
  Ack: 0xff07,
} as const;
export type ControlFrameId = (typeof ControlFrameId)[keyof typeof ControlFrameId];

export function isControlId(id: number): boolean {
  return id >= CONTROL_ID_FIRST && id <= CONTROL_ID_LAST;
}

export const RESUME_PROTOCOL_VERSION = 1;
export const TOKEN_BYTES = 16;
/** Marker for "unknown" in u64 fields. */
export const U64_UNKNOWN = Number.MAX_SAFE_INTEGER;

/** Why a GOAWAY was sent. */
export type GoAwayReason = 'unspecified' | 'shutdown' | 'session-close' | 'max-lifetime' | 'idle-timeout' | 'replaced';
const GOAWAY_REASONS: readonly GoAwayReason[] = ['unspecified', 'shutdown', 'session-close', 'max-lifetime', 'idle-timeout', 'replaced'];

export const GoAwayFlags = { Reconnect: 1, Resume: 2 } as const;

export interface GoAway {
  reason: GoAwayReason;
  /** The peer may connect again (e.g. after a restart). */
  reconnect: boolean;
  /** The peer may resume this session on a new connection (it is kept). */
  resume: boolean;
  /** How long the sender waits for the peer to finish before forcing the close. */
  deadlineMs: number;
  message: string;
}

/** Why a resume was refused. */
export type ResumeRefusedReason =
  | 'unknown-token' // no such session (never existed, expired, closed, or the server restarted)
  | 'replay-overflow' // the server dropped unacknowledged messages the client never received (byte bound)
  | 'replay-expired' // same, because of the age bound
  | 'peer-replay-overflow' // the client dropped messages the server never received
  | 'resume-disabled' // the server does not resume sessions
  | 'protocol'; // malformed or inconsistent request (bad version, counts that cannot be)
const REFUSED_REASONS: readonly ResumeRefusedReason[] = [
  'unknown-token',
  'replay-overflow',
  'replay-expired',
  'peer-replay-overflow',
  'resume-disabled',
  'protocol',
];

export interface ResumeRequest {
  version: number;
  /** The client does not hold its unacknowledged messages (a new process): the server's count decides where it continues. */
  historyUnknown: boolean;
  /** 16 bytes; all zero asks for a new session. */
  token: Uint8Array;
  /** Server messages the client has delivered. */
  received: number;
  /** Lowest sequence number the client can still replay (its next seq if it holds nothing). */
  firstAvailable: number;
}

export interface ResumeOk {
  version: number;
  resumed: boolean;
  token: Uint8Array;
  /** Client messages the server has delivered: the client replays from received + 1. */
  received: number;
  sessionId: number;
}

export interface ResumeRefused {
  version: number;
  reason: ResumeRefusedReason;
  /** Client messages the server had delivered, or U64_UNKNOWN. */
  received: number;
  /** Server→client messages that can never be delivered: [lostFrom, lostTo], empty when lostFrom > lostTo. */
  lostFrom: number;
  lostTo: number;
  /** Client→server messages the server will never get. */
  peerLostFrom: number;
  peerLostTo: number;
  message: string;
}

// ---- encoding helpers -------------------------------------------------------

const TWO32 = 0x1_0000_0000;
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: false });

function putU64(b: Uint8Array, p: number, v: number): void {
  const n = v < 0 ? 0 : v > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : Math.floor(v);
  const hi = Math.floor(n / TWO32);
  const lo = n >>> 0;
  putU32(b, p, hi);
  putU32(b, p + 4, lo);
}

function getU64(b: Uint8Array, p: number): number {
  const hi = getU32(b, p);
  const lo = getU32(b, p + 4);
  // Values past 2^53 cannot be exact; clamp them to U64_UNKNOWN.
  if (hi >= 0x200000) return U64_UNKNOWN;
  return hi * TWO32 + lo;
}

function putU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

function getU32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

function putU16(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 8;
  b[p + 1] = v;
}

function getU16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

function text(message: string, max = 512): Uint8Array {
  const bytes = utf8.encode(message);
  return bytes.length > max ? bytes.subarray(0, max) : bytes;
}

// ---- frames -----------------------------------------------------------------

export function encodePing(nonce: number): Uint8Array {
  const b = new Uint8Array(4);
  putU32(b, 0, nonce >>> 0);
  return b;
}

/** PING and PONG share the layout. Returns the nonce, or -1 if malformed. */
export function decodeNonce(p: Uint8Array): number {
  return p.length < 4 ? -1 : getU32(p, 0);
}

export function encodeAck(received: number): Uint8Array {
  const b = new Uint8Array(8);
  putU64(b, 0, received);
  return b;
}

/** Returns the acknowledged count, or -1 if malformed. */
export function decodeAck(p: Uint8Array): number {
  return p.length < 8 ? -1 : getU64(p, 0);
}

export function encodeGoAway(g: GoAway): Uint8Array {
  const msg = text(g.message);
  const b = new Uint8Array(8 + msg.length);
  b[0] = Math.max(0, GOAWAY_REASONS.indexOf(g.reason));
  b[1] = (g.reconnect ? GoAwayFlags.Reconnect : 0) | (g.resume ? GoAwayFlags.Resume : 0);
  putU32(b, 2, Math.max(0, Math.min(0xffffffff, Math.floor(g.deadlineMs))));
  putU16(b, 6, msg.length);
  b.set(msg, 8);
  return b;
}

export function decodeGoAway(p: Uint8Array): GoAway | null {
  if (p.length < 8) return null;
  const n = getU16(p, 6);
  if (p.length < 8 + n) return null;
  return {
    reason: GOAWAY_REASONS[p[0]!] ?? 'unspecified',
    reconnect: (p[1]! & GoAwayFlags.Reconnect) !== 0,
    resume: (p[1]! & GoAwayFlags.Resume) !== 0,
    deadlineMs: getU32(p, 2),
    message: utf8d.decode(p.subarray(8, 8 + n)),
  };
}

export function encodeResumeRequest(r: Omit<ResumeRequest, 'version'>): Uint8Array {
  const b = new Uint8Array(2 + TOKEN_BYTES + 16);
  b[0] = RESUME_PROTOCOL_VERSION;
  b[1] = r.historyUnknown ? 1 : 0;
  b.set(r.token.subarray(0, TOKEN_BYTES), 2);
  putU64(b, 2 + TOKEN_BYTES, r.received);
  putU64(b, 10 + TOKEN_BYTES, r.firstAvailable);
  return b;
}

export function decodeResumeRequest(p: Uint8Array): ResumeRequest | null {
  if (p.length < 2 + TOKEN_BYTES + 16) return null;
  return {
    version: p[0]!,
    historyUnknown: (p[1]! & 1) !== 0,
    token: p.slice(2, 2 + TOKEN_BYTES),
    received: getU64(p, 2 + TOKEN_BYTES),
    firstAvailable: getU64(p, 10 + TOKEN_BYTES),
  };
}

export function encodeResumeOk(r: Omit<ResumeOk, 'version'>): Uint8Array {
  const b = new Uint8Array(2 + TOKEN_BYTES + 12);
  b[0] = RESUME_PROTOCOL_VERSION;
  b[1] = r.resumed ? 1 : 0;
  b.set(r.token.subarray(0, TOKEN_BYTES), 2);
  putU64(b, 2 + TOKEN_BYTES, r.received);
  putU32(b, 10 + TOKEN_BYTES, r.sessionId >>> 0);
  return b;
}

export function decodeResumeOk(p: Uint8Array): ResumeOk | null {
  if (p.length < 2 + TOKEN_BYTES + 12) return null;
  return {
    version: p[0]!,
    resumed: (p[1]! & 1) !== 0,
    token: p.slice(2, 2 + TOKEN_BYTES),
    received: getU64(p, 2 + TOKEN_BYTES),
    sessionId: getU32(p, 10 + TOKEN_BYTES),
  };
}

export function encodeResumeRefused(r: Omit<ResumeRefused, 'version'>): Uint8Array {
  const msg = text(r.message);
  const b = new Uint8Array(2 + 40 + 2 + msg.length);
  b[0] = RESUME_PROTOCOL_VERSION;
  b[1] = Math.max(0, REFUSED_REASONS.indexOf(r.reason));
  putU64(b, 2, r.received);
  putU64(b, 10, r.lostFrom);
  putU64(b, 18, r.lostTo);
  putU64(b, 26, r.peerLostFrom);
  putU64(b, 34, r.peerLostTo);
  putU16(b, 42, msg.length);
  b.set(msg, 44);
  return b;
}

export function decodeResumeRefused(p: Uint8Array): ResumeRefused | null {
  if (p.length < 44) return null;
  const n = getU16(p, 42);
  if (p.length < 44 + n) return null;
  return {
    version: p[0]!,
    reason: REFUSED_REASONS[p[1]!] ?? 'protocol',
    received: getU64(p, 2),
    lostFrom: getU64(p, 10),
    lostTo: getU64(p, 18),
    peerLostFrom: getU64(p, 26),
    peerLostTo: getU64(p, 34),
    message: utf8d.decode(p.subarray(44, 44 + n)),
  };
}

export function tokenToHex(token: Uint8Array): string {
  return Buffer.from(token.buffer, token.byteOffset, token.byteLength).toString('hex');
}

export function hexToToken(hex: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function isZeroToken(token: Uint8Array): boolean {
  for (let i = 0; i < token.length; i++) if (token[i] !== 0) return false;
  return true;
}
