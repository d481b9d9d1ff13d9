import type { EventEmitter } from 'node:events';
import {
  toFastPortError,
  type AddressInfo,
  type CloseInfo,
  type ConnectionId,
  type EngineHandler,
  type FastPortError,
  type ListenerId,
} from '@fastport/native-io';
import { CONTROL_ID_FIRST, CONTROL_ID_LAST } from './control';
import { handleControlFrame, malformed } from './control-handler';
import { FrameDecoder, type Frame } from './framing';
import { ListenerCache } from './listener-cache';
import type { SessionHost } from './host';
import { Session, type SessionCloseInfo } from './session';
import { reassemblyBytes, stopReading, type SessionSlot } from './session-slot';

/**
 * @internal The engine's events for one host: accepted and outbound
 * connections become sessions, received bytes are decoded into frames
 * (control frames go to the control handler, the others to the 'frame'
 * event), drains, half-closes and closes reach their session.
 */
export class EngineEvents implements EngineHandler {
  /** Connections reset at accept (maxSessions): their close is counted, not reported. */
  private readonly refused = new Set<ConnectionId>();

  /** 'frame' listeners, called without emit()'s per-call allocation. */
  private readonly frameListeners: ListenerCache<Session, Frame>;

  constructor(
    private readonly host: SessionHost,
    private readonly side: 'server' | 'client',
  ) {
    this.frameListeners = new ListenerCache(host.events as unknown as EventEmitter, 'frame');
  }

  onAccept(conn: ConnectionId, _listener: ListenerId, remote: AddressInfo): void {
    const host = this.host;
    if (host.maxSessions > 0 && host.slots.size >= host.maxSessions) {
      this.refused.add(conn);
      host.totals.refusedConnections++;
      host.engine.close(conn, 'abort');
      return;
    }
    const session = this.openSession(conn, remote);
    host.onAcceptSession(session);
  }

  onConnect(conn: ConnectionId, remote: AddressInfo): void {
    const session = this.openSession(conn, remote);
    if (this.host.role.onOutboundOpen?.(session) === false) return;
    this.host.announce(session);
  }

  onData(conn: ConnectionId, data: Uint8Array): void {
    const host = this.host;
    const slot = host.slots.get(conn);
    if (slot === undefined) return;
    const session = slot.session;
    session.counters.bytesIn += data.byteLength;
    host.totals.bytesIn += data.byteLength;
    if (slot.closing) return;
    slot.decoder.push(data, slot.onFrame, slot.onError);
    if (host.receiveSwitch !== null && slot.session.connectionId === conn) slot.session.flow.afterRead();
    const budget = host.budget;
    if (budget !== null) {
      const now = slot.closing ? 0 : reassemblyBytes(slot.decoder);
      const before = slot.reserved;
      if (now > before) {
        // A full budget refuses this frame only if its session holds its fair share or more (it pays, not the others).
        if (budget.tryReserve(now - before) || budget.admit(now - before, host.memory.heldBy(session))) slot.reserved = now;
        else {
          stopReading(slot, budget);
          slot.session.closeWith('abort', {
            reason: 'memory-budget',
            code: 'ENOBUFS',
            message: `reassembling a frame (${now} bytes held) would pass the memory budget of ${budget.limitBytes} bytes`,
          });
        }
      } else if (now < before) {
        budget.release(before - now);
        slot.reserved = now;
      }
    }
  }

  onEnd(conn: ConnectionId): void {
    const slot = this.host.slots.get(conn);
    if (slot === undefined) return;
    const session = slot.session;
    if (session.connectionId !== conn) return;
    // The peer finished sending: our final ack covers everything it sent.
    session.rel?.sendAck();
    session.emit('end');
    if (this.host.allowHalfOpen && session.state === 'closing') session.closeWith('graceful', { reason: session.pendingCloseReason?.reason ?? 'peer' });
  }

  onDrain(conn: ConnectionId): void {
    const slot = this.host.slots.get(conn);
    if (slot === undefined || slot.session.connectionId !== conn) return;
    slot.session.handleDrain();
  }

  onClose(conn: ConnectionId, info: CloseInfo): void {
    const host = this.host;
    if (this.refused.delete(conn)) {
      host.totals.countClose('max-sessions');
      return;
    }
    const slot = host.slots.get(conn);
    const own = slot !== undefined && slot.session.connectionId === conn ? slot.session.pendingCloseReason : undefined;
    const closeInfo: SessionCloseInfo = { reason: own?.reason ?? info.reason, unsentBytes: info.unsentBytes };
    const code = own?.code ?? info.code;
    const message = own?.message ?? info.message;
    if (code !== undefined) closeInfo.code = code;
    if (message !== undefined) closeInfo.message = message;
    if (slot === undefined) {
      host.totals.countClose(closeInfo.reason);
      host.role.onOutboundClose?.(conn, closeInfo, undefined);
      return;
    }
    host.slots.delete(conn);
    if (host.budget !== null && slot.reserved > 0) host.budget.release(slot.reserved);
    slot.reserved = 0;
    const watcher = host.transportWatchers.get(conn);
    if (watcher !== undefined) {
      host.transportWatchers.delete(conn);
      watcher(closeInfo, info);
    }
    const session = slot.session;
    if (session.connectionId !== conn) return; // an old connection of a resumed session
    host.totals.countClose(closeInfo.reason);
    if (session.state !== 'closed' && host.shouldDetach(session, closeInfo)) {
      host.detached.add(session);
      session.detachTransport(closeInfo);
      host.role.onOutboundClose?.(conn, closeInfo, session);
      return;
    }
    host.role.onOutboundClose?.(conn, closeInfo, session);
    // Clean: closed gracefully by either side, nothing lost; a for-await loop ends instead of throwing.
    const clean = (info.reason === 'local' || info.reason === 'peer') && closeInfo.code === undefined && closeInfo.unsentBytes === 0;
    host.finalize(session, closeInfo, clean);
  }

  private openSession(conn: ConnectionId, remote: AddressInfo): Session {
    const host = this.host;
    const session = new Session(host, conn, remote, this.side);
    const slot: SessionSlot = {
      conn,
      session,
      decoder: new FrameDecoder(host.frameSpec),
      reserved: 0,
      closing: false,
      evicted: false,
      onFrame: (frame: Frame) => this.onFrame(slot, frame),
      onError: (err: FastPortError) => {
        host.totals.framingErrors++;
        // ENOBUFS: the reassembly buffer could not be allocated (a huge maxFrameSize); only this session pays.
        const reason = err.code === 'ENOBUFS' ? 'out-of-memory' : 'framing';
        slot.session.closeWith(err.code === 'ENOBUFS' ? 'abort' : 'graceful', { reason, code: err.code, message: err.message });
      },
    };
    host.slots.set(conn, slot);
    host.totals.sessionsTotal++;
    host.scheduleCheck(session.monitor);
    return session;
  }

  private onFrame(slot: SessionSlot, frame: Frame): void {
    const host = this.host;
    const session = slot.session;
    const id = frame.id;
    if (host.controlEnabled && id >= CONTROL_ID_FIRST && id <= CONTROL_ID_LAST) {
      handleControlFrame(host.controlHost, session, frame);
      return;
    }
    if (session.awaitingHello) host.announce(session);
    session.counters.framesIn++;
    host.totals.framesIn++;
    const rel = session.rel;
    if (rel !== null) {
      if (rel.handshake === 'pending') {
        malformed(session, 'application frame before the resume handshake finished');
        return;
      }
      rel.delivered(frame.bytes.byteLength);
    }
    const inbox = session.inbox;
    if (inbox !== null) inbox.push(frame);
    try {
      this.frameListeners.call(session, frame);
    } catch (err) {
      host.totals.handlerErrors++;
      host.reportError(toFastPortError(err), session);
    }
    if (rel !== null && session.rel === rel) rel.maybeAck();
  }
}
