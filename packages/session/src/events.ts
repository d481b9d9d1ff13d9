import type { AddressInfo, ListenerInfo } from '@fastport/native-io';
import type { ProxyProtocolError } from './proxy-protocol';
import type { GoAway } from './control';
import type { Frame } from './framing';
import type { HeartbeatEvent, Liveness } from './heartbeat';
import type { LostMessages } from './reliable';
import type { ConnectInfo } from './reconnecting-client';
import type { ResumeFailedInfo, ResumeInfo, Session, SessionCloseInfo } from './session';

/*
 * Event maps: each event's listener arguments, as tuples. Server, Client,
 * ReconnectingClient and Session are `EventEmitter<Map>` (@types/node 20),
 * so `server.on('frame', (session, frame) => …)` infers both parameters and
 * a misspelled event name or a listener of the wrong shape does not compile.
 */

/** Events of one Session. */
export type SessionEvents = {
  /** The queue fell to the low watermark: sending may go on. */
  drain: [];
  /** The peer half-closed. */
  end: [];
  close: [info: SessionCloseInfo];
  liveness: [state: Liveness, previous: Liveness];
  /** Probes, pongs and the timeout, when this side drives heartbeats. */
  heartbeat: [event: HeartbeatEvent];
  /** The peer is going away. */
  goaway: [goaway: GoAway];
  /** A resumable session lost its connection and waits for a new one. */
  detach: [info: SessionCloseInfo];
  resume: [info: ResumeInfo];
  'resume-failed': [info: ResumeFailedInfo];
  /** Frames that did not (or may not) reach their peer. */
  lost: [lost: LostMessages];
};

/** Events of a Server or Client (session events are relayed with the session first). */
export type HostEvents = {
  /** A new session (on a Server with resume: once its first frame said whether it resumes). */
  session: [session: Session];
  /** An application frame; `frame` is valid only during the listener call (copy what you keep). */
  frame: [session: Session, frame: Frame];
  close: [session: Session, info: SessionCloseInfo];
  /** A listener threw, or another error without a caller to reject. */
  error: [err: Error, session: Session | undefined];
  liveness: [session: Session, state: Liveness, previous: Liveness];
  /** Probes, pongs (with the round trip) and timeouts of sessions this host drives heartbeats on. */
  heartbeat: [session: Session, event: HeartbeatEvent];
  goaway: [session: Session, goaway: GoAway];
  detach: [session: Session, info: SessionCloseInfo];
  resume: [session: Session, info: ResumeInfo];
  'resume-failed': [session: Session, info: ResumeFailedInfo];
  lost: [session: Session, lost: LostMessages];
};

/** Phases a Server's shutdown goes through, in order. */
export type ShutdownPhase = 'stopped-accepting' | 'draining' | 'forcing' | 'closed';

export type ServerEvents = HostEvents & {
  listening: [info: ListenerInfo];
  shutdown: [phase: ShutdownPhase];
  /** The engine is released: the server is gone. */
  closed: [];
  /** A connection closed for a missing, malformed, oversized or late PROXY header (`remote`: the balancer). */
  'proxy-rejected': [remote: AddressInfo, error: ProxyProtocolError];
};

export type ClientEvents = HostEvents;

export interface ReconnectingInfo {
  attempt: number;
  delayMs: number;
  error: Error;
}

export type ReconnectingClientEvents = {
  connect: [session: Session, info: ConnectInfo];
  'connect-error': [err: Error];
  disconnect: [session: Session, info: SessionCloseInfo];
  reconnecting: [info: ReconnectingInfo];
  frame: [session: Session, frame: Frame];
  resume: [session: Session, info: ResumeInfo];
  'resume-failed': [session: Session, info: ResumeFailedInfo];
  lost: [session: Session, lost: LostMessages];
  goaway: [session: Session, goaway: GoAway];
  liveness: [session: Session, state: Liveness, previous: Liveness];
  'give-up': [err: Error];
  close: [session: Session | undefined, reason: string];
  error: [err: Error];
};
