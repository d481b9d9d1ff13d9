export * from './framing';
export { Session } from './session';
export type {
  BackpressurePolicy,
  SendResult,
  SessionState,
  Liveness,
  SessionCloseInfo,
  SessionCounters,
} from './session';
export { SessionManager } from './session-manager';
export { SessionHost } from './host';
export type { SessionHostOptions, HostStats } from './host';
export { Server } from './server';
export type { ServerOptions, ServerCloseResult } from './server';
export { Client } from './client';
export type { ClientOptions } from './client';
