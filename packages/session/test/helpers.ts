import * as net from 'node:net';
import { engineAvailability, type EngineKind } from '@fastport/native-io';
import { describeEngines } from '@fastport/test-utils/vitest';
import { FrameDecoder, type Frame, type FramingOption } from '../src';

/**
 * Runs `body` once per engine of the test matrix (@fastport/test-utils: the
 * platform's engines, FASTPORT_ENGINES, FASTPORT_ENGINES_STRICT). An
 * unavailable engine shows up as a skipped test whose name carries the
 * reason (never as a pass), or as a failure in strict mode.
 */
export function forEachEngine(title: string, body: (kind: EngineKind) => void): void {
  describeEngines(title, engineAvailability, body);
}

/** Decodes the frames a raw peer received (copies). */
export function decodeAll(framing: FramingOption, chunks: Buffer[]): { id: number; payload: Buffer }[] {
  const dec = new FrameDecoder(framing);
  const out: { id: number; payload: Buffer }[] = [];
  for (const c of chunks) dec.push(c, (f: Frame) => out.push({ id: f.id, payload: Buffer.from(f.payload) }), () => {});
  return out;
}

/** An 8-byte payload carrying a message number (and a tag byte), filled to `size`. */
export function numbered(n: number, size = 16, tag = 0): Buffer {
  const b = Buffer.alloc(Math.max(9, size), tag);
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0);
  b.writeUInt32BE(n >>> 0, 4);
  b[8] = tag;
  return b;
}

export function numberOf(payload: Uint8Array): number {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return b.readUInt32BE(0) * 0x1_0000_0000 + b.readUInt32BE(4);
}

export function mb(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

export function memorySnapshot(): { rss: number; heapUsed: number; external: number; arrayBuffers: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

export function formatMemory(label: string, m: ReturnType<typeof memorySnapshot>): string {
  return `${label}: rss ${mb(m.rss)}, heapUsed ${mb(m.heapUsed)}, external ${mb(m.external)}, arrayBuffers ${mb(m.arrayBuffers)}`;
}

/**
 * A loopback TCP proxy the test controls: it can swallow one direction
 * (bytes are read and thrown away, as if lost on the way) and reset every
 * connection (RST both sides).
 */
export class TestProxy {
  readonly server: net.Server;
  port = 0;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket; dark: boolean }>();
  /** When true, bytes from the target to the client are read and discarded. */
  swallowToClient = false;
  swallowed = 0;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((a) => {
      const b = net.connect({ host: '127.0.0.1', port: this.targetPort });
      const pair = { a, b, dark: false };
      this.pairs.add(pair);
      a.on('error', () => {});
      b.on('error', () => {});
      a.on('data', (d) => {
        if (pair.dark) this.swallowed += d.length;
        else b.write(d);
      });
      b.on('data', (d) => {
        if (this.swallowToClient || pair.dark) this.swallowed += d.length;
        else a.write(d);
      });
      // A dark connection does not pass a close on either: the other side never learns (a real blackhole).
      const end = () => {
        if (pair.dark && !(a.destroyed && b.destroyed)) return;
        this.pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('close', end);
      b.on('close', end);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** The connections open now go dark both ways (bytes vanish, nothing closes); new ones work. */
  blackholeAll(): void {
    for (const pair of this.pairs) pair.dark = true;
  }

  /** Resets every proxied connection on both sides. */
  resetAll(): void {
    for (const pair of this.pairs) pair.dark = false;
    for (const { a, b } of this.pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
