import { EventEmitter } from 'node:events';
import type { Engine } from '@fastport/native-io';
import type { HostEvents } from './events';
import type { SessionHost } from './host';
import type { HostStats } from './host-stats';
import type { SessionManager } from './session-manager';

/**
 * What a Server and a Client have in common: the host they own (one engine,
 * its sessions, timers and memory-budget membership) and the read-only view
 * of it. They own the host; they do not extend it.
 */
export abstract class HostOwner<Events extends HostEvents & Record<keyof Events, unknown[]>> extends EventEmitter<Events> {
  /** @internal The host this server or client owns: engine, sessions, timers, memory budget. */
  abstract readonly host: SessionHost;

  /** The engine (`engine.info.kind` says which one `auto` picked, and why). */
  get engine(): Engine {
    return this.host.engine;
  }

  /** The sessions announced here, by id. */
  get sessions(): SessionManager {
    return this.host.sessions;
  }

  /** True when sessions over their high watermark are not read until they drain (the option is on and the engine can pause). */
  get readBackpressure(): boolean {
    return this.host.readBackpressure;
  }

  /** True when session control frames (heartbeat, GOAWAY, resume) are spoken: on by default where the framing has a 2+ byte id. */
  get controlEnabled(): boolean {
    return this.host.controlEnabled;
  }

  stats(): HostStats {
    return this.host.stats();
  }

  /** Bytes held now (send queues as the engine holds them, reassembly, replay buffers): what the memory budget counts. */
  memoryUsage(): number {
    return this.host.memoryUsage();
  }
}
