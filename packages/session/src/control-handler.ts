import type { Engine } from '@fastport/native-io';
import {
  ControlFrameId,
  decodeAck,
  decodeGoAway,
  decodeNonce,
  decodeResumeOk,
  decodeResumeRefused,
  decodeResumeRequest,
  type GoAway,
  type ResumeRequest,
} from './control';
import type { HostEvents } from './events';
import type { Frame } from './framing';
import type { Session } from './session';

/** @internal What control-frame handling needs of the host a session lives on. */
export interface ControlHost {
  readonly engine: Engine;
  readonly allowHalfOpen: boolean;
  now(): number;
  countControlIn(): void;
  /** RESUME_REQUEST: the server resumes or starts a session; a host that does not resume refuses it. */
  onResumeRequest(session: Session, req: ResumeRequest): void;
  /** Re-emits a session event on the host as (session, ...args). */
  relay<K extends keyof HostEvents>(event: K, ...args: HostEvents[K]): void;
}

/**
 * @internal Handles one session-layer control frame (ids 0xFF00-0xFF0F):
 * PING/PONG, GOAWAY, ACK and the resume handshake. A frame that cannot be
 * decoded, or that the session's state does not allow, closes the session
 * ('control-malformed'); reserved ids are ignored, for later versions.
 */
export function handleControlFrame(host: ControlHost, session: Session, frame: Frame): void {
  session.peerControl = true;
  session.counters.controlIn++;
  host.countControlIn();
  const p = frame.payload;
  switch (frame.id) {
    case ControlFrameId.Ping: {
      if (decodeNonce(p) < 0) return malformed(session, 'PING shorter than 4 bytes');
      session.sendControl(ControlFrameId.Pong, p.subarray(0, 4));
      return;
    }
    case ControlFrameId.Pong: {
      const nonce = decodeNonce(p);
      if (nonce < 0) return malformed(session, 'PONG shorter than 4 bytes');
      session.monitor.onPong(nonce, host.now());
      return;
    }
    case ControlFrameId.GoAway: {
      const g = decodeGoAway(p);
      if (g === null) return malformed(session, 'GOAWAY malformed');
      onGoAway(host, session, g);
      if (host.allowHalfOpen && session.state === 'closing') session.closeWith('graceful', { reason: 'peer-goaway' });
      return;
    }
    case ControlFrameId.Ack: {
      const n = decodeAck(p);
      if (n < 0) return malformed(session, 'ACK shorter than 8 bytes');
      if (session.rel !== null && !session.rel.onAck(n)) return malformed(session, `ACK of ${n} frames, more than were sent`);
      return;
    }
    case ControlFrameId.ResumeRequest: {
      const req = decodeResumeRequest(p);
      if (req === null) return malformed(session, 'RESUME_REQUEST malformed');
      host.onResumeRequest(session, req);
      return;
    }
    case ControlFrameId.ResumeOk: {
      const ok = decodeResumeOk(p);
      if (ok === null) return malformed(session, 'RESUME_OK malformed');
      const err = session.rel === null ? 'RESUME_OK without a pending request' : session.rel.onResumeOk(ok);
      if (err !== undefined) malformed(session, err);
      return;
    }
    case ControlFrameId.ResumeRefused: {
      const r = decodeResumeRefused(p);
      if (r === null) return malformed(session, 'RESUME_REFUSED malformed');
      if (session.rel === null || session.rel.handshake !== 'pending') return malformed(session, 'RESUME_REFUSED without a pending request');
      session.rel.onResumeRefused(r);
      return;
    }
    default:
      return;
  }
}

/** The peer broke the session protocol. */
export function malformed(session: Session, message: string): void {
  session.closeWith('abort', { reason: 'control-malformed', code: 'ERR_FRAME_MALFORMED', message });
}

/**
 * The peer is going away: ack what we have, stop sending on this connection
 * and half-close; the peer sends its final ack and closes. A resumable
 * session keeps taking sends (kept for the next connection): on the client
 * always (the reconnecting client resumes or starts over), on the server
 * when the GOAWAY allows a resume.
 */
function onGoAway(host: ControlHost, session: Session, g: GoAway): void {
  session.goAwayReceived = g;
  const rel = session.rel;
  if (rel !== null) {
    if (!g.resume) rel.final = true;
    rel.draining = true;
    rel.sendAck();
  }
  session.emit('goaway', g);
  host.relay('goaway', session, g);
  if (session.state === 'open' || session.state === 'detached') {
    host.engine.shutdown(session.connectionId);
    session.currentState = rel !== null && (session.side === 'client' || !rel.final) ? 'detached' : 'closing';
  }
}
