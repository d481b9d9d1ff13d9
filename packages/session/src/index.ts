/*
 * The public API of @fastport/session, listed by hand: what an application
 * needs, nothing of the machinery (the control-frame codec, the replay log,
 * the heartbeat state machine, the host). Adding a name here is a decision.
 */

// Servers and clients
export { Server, DEFAULT_RESUME_WINDOW_MS, DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_DETACHED, DEFAULT_SHUTDOWN_DEADLINE_MS } from './server';
export type {
  ServerOptions,
  ServerResumeOptions,
  ServerCloseResult,
  ShutdownOptions,
  ListenCallOptions,
  ShutdownOutcome,
  ShutdownReport,
  SessionShutdownOutcome,
} from './server';
export { Client } from './client';
export type { ClientOptions, ClientConnectOptions } from './client';
export { ReconnectingClient } from './reconnecting-client';
export type { ReconnectingClientOptions, ClientResumeOptions, ConnectInfo } from './reconnecting-client';
export type { HostOwner } from './host-owner';
export {
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_CONTROL_RESERVE_BYTES,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_BACKPRESSURE_POLICY,
} from './host-options';
export type { SessionHostOptions } from './host-options';
export type { HostStats } from './host-stats';

// Sessions
export { Session } from './session';
export type {
  BackpressurePolicy,
  SendResult,
  SessionState,
  Liveness,
  SessionCloseInfo,
  CloseReason,
  EngineCloseReason,
  SessionCloseReason,
  SessionCounters,
  ResumeState,
  ResumeInfo,
  ResumeFailedInfo,
} from './session';
export type { SessionManager } from './session-manager';
export { DEFAULT_FRAMES_HIGH_WATER_MARK } from './frame-inbox';
export type { FramesOptions, SessionClosedError } from './frame-inbox';
export { toSessionId } from './ids';
export type { SessionId, ConnectionId } from './ids';

// Events
export type {
  SessionEvents,
  HostEvents,
  ServerEvents,
  ClientEvents,
  ReconnectingClientEvents,
  ReconnectingInfo,
  ShutdownPhase,
} from './events';
export type { GoAway, GoAwayReason, ResumeRefusedReason } from './control';
export type { LostMessages, ReplayOptions } from './reliable';
export { DEFAULT_REPLAY } from './reliable';
export type { HeartbeatOptions, HeartbeatEvent } from './heartbeat';
export { DEFAULT_HEARTBEAT } from './heartbeat';
export type { BackoffOptions, ResolvedBackoff } from './backoff';
// The reconnect schedule, also for an application's own retries (the server's worker supervisor uses it).
export { DEFAULT_BACKOFF, backoffDelay, resolveBackoff } from './backoff';

// Framing
export { FrameDecoder, FrameEncoder, resolveFrameSpec, FRAMING_PRESETS } from './framing';
export type { Frame, FrameSpec, FramingOption, FramingPreset } from './framing';

// Memory budget
export { MemoryBudget, DEFAULT_MEMORY_LIMIT } from './memory-budget';
export type { MemoryBudgetOptions, MemoryBudgetStats } from './memory-budget';

// Errors
export { AbortError } from './abort';
export type { ArgumentError, ArgumentErrorCode } from './arguments';
export { ProxyProtocolError, PROXY_V2_SIGNATURE, PROXY_V1_MAX_BYTES, DEFAULT_PROXY_HEADER_TIMEOUT_MS, DEFAULT_PROXY_MAX_HEADER_BYTES } from './proxy-protocol';
export type { ProxyProtocolOptions, ProxyHeader, ProxyRejectReason, ProxyProtocolStats } from './proxy-protocol';
