export * from './framing';
export { Session, newToken } from './session';
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
export { SessionManager } from './session-manager';
export {
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_CONTROL_RESERVE_BYTES,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
} from './host';
export type { SessionHostOptions, HostStats } from './host';
export {
  Server,
  DEFAULT_RESUME_WINDOW_MS,
  DEFAULT_HELLO_TIMEOUT_MS,
  DEFAULT_MAX_DETACHED,
  DEFAULT_SHUTDOWN_DEADLINE_MS,
} from './server';
export type {
  ServerOptions,
  ServerCloseResult,
  ServerResumeOptions,
  ShutdownOptions,
  ShutdownOutcome,
  ShutdownReport,
  SessionShutdownOutcome,
} from './server';
export { Client } from './client';
export type { ClientOptions } from './client';
export { ReconnectingClient } from './reconnecting-client';
export type { ReconnectingClientOptions, ClientResumeOptions, ConnectInfo } from './reconnecting-client';
export { backoffDelay, resolveBackoff, DEFAULT_BACKOFF } from './backoff';
export type { BackoffOptions, ResolvedBackoff } from './backoff';
export { HeartbeatMonitor, resolveHeartbeat, DEFAULT_HEARTBEAT } from './heartbeat';
export type { HeartbeatOptions, ResolvedHeartbeat, HeartbeatEvent } from './heartbeat';
export { MemoryBudget, DEFAULT_MEMORY_LIMIT } from './memory-budget';
export type { MemoryBudgetOptions, MemoryBudgetStats, BudgetMember } from './memory-budget';
export { OutboundLog, resolveReplay, DEFAULT_REPLAY } from './reliable';
export type { ReplayOptions, ResolvedReplay, LostMessages, LogEntry } from './reliable';
export * from './control';
export type { SessionEvents, HostEvents, ServerEvents, ClientEvents, ReconnectingClientEvents, ReconnectingInfo, ShutdownPhase } from './events';
export type { Clock } from './timer-wheel';
export { ProxyProtocolGate, ProxyProtocolError, parseProxyHeader, ipv6Text, PROXY_V2_SIGNATURE, PROXY_V1_MAX_BYTES, DEFAULT_PROXY_HEADER_TIMEOUT_MS, DEFAULT_PROXY_MAX_HEADER_BYTES } from './proxy-protocol';
export type { ProxyProtocolOptions, ProxyHeader, ProxyRejectReason, ProxyParseResult, ProxyProtocolStats } from './proxy-protocol';
