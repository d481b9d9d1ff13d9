/**
 * Raw node:net peers: an independent TCP implementation on the other end of
 * the code under test, to send bytes the framework would never produce and
 * to see exactly the bytes it sends.
 */
import * as net from 'node:net';
import { WAIT_MS, waitFor } from './wait';

export interface RawPeer {
  readonly socket: net.Socket;
  /** Every chunk received, in order. */
  readonly chunks: Buffer[];
  /** Bytes received so far. */
  readonly bytes: number;
  /** The peer's FIN arrived. */
  readonly ended: boolean;
  /** The socket closed (either side, any reason). */
  readonly isClosed: boolean;
  /** The first socket error, if any (errors never throw: tests provoke resets on purpose). */
  readonly error: NodeJS.ErrnoException | undefined;
  /** Resolves when the socket closed. */
  readonly closed: Promise<void>;
  /** Everything received so far, as one buffer. */
  data(): Buffer;
  send(bytes: Uint8Array | string): void;
  /**
   * Waits until `bytes` bytes arrived (a number) or `until(data)` holds, and
   * returns everything received. Fails at once if the socket closes first.
   */
  readUntil(until: number | ((data: Buffer) => boolean), what?: string, timeoutMs?: number): Promise<Buffer>;
}

/** Wraps a socket (connected or accepted) into a recording peer. */
export function wrapSocket(socket: net.Socket, onData?: (chunk: Buffer) => void): RawPeer {
  let bytes = 0;
  let ended = false;
  let closed = false;
  let error: NodeJS.ErrnoException | undefined;
  const chunks: Buffer[] = [];
  const closedPromise = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    bytes += chunk.length;
    onData?.(chunk);
  });
  socket.on('end', () => {
    ended = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error ??= err;
  });
  const data = (): Buffer => Buffer.concat(chunks);
  return {
    socket,
    chunks,
    get bytes() {
      return bytes;
    },
    get ended() {
      return ended;
    },
    get isClosed() {
      return closed;
    },
    get error() {
      return error;
    },
    closed: closedPromise,
    data,
    send: (b) => {
      socket.write(b);
    },
    async readUntil(until, what, timeoutMs = WAIT_MS) {
      const done = typeof until === 'number' ? () => bytes >= until : () => until(data());
      const label = what ?? (typeof until === 'number' ? `${until} bytes` : 'the expected bytes');
      await waitFor(
        () => {
          if (done()) return true;
          if (closed) throw new Error(`raw peer closed after ${bytes} bytes while waiting for ${label}${error ? ` (${error.code ?? error.message})` : ''}`);
          return false;
        },
        label,
        timeoutMs,
      );
      return data();
    },
  };
}

export interface ConnectRawOptions {
  host?: string;
  allowHalfOpen?: boolean;
  /** Called with every chunk as it arrives (after it is recorded). */
  onData?: (chunk: Buffer) => void;
}

/** Connects a raw peer; resolves once connected, rejects with the connect error. */
export function connectRaw(port: number, options: ConnectRawOptions = {}): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen ?? false });
    const peer = wrapSocket(socket, options.onData);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(peer);
    });
    socket.once('error', reject);
  });
}

/** A raw connection attempt that is expected to fail; resolves with the error code. */
export function connectRawError(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} unexpectedly succeeded`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'EUNKNOWN'));
  });
}

export interface RawServer {
  readonly server: net.Server;
  readonly port: number;
  /** Accepted peers in accept order. */
  readonly peers: RawPeer[];
  /** Destroys every accepted socket and closes the listener. */
  close(): Promise<void>;
}

export interface ListenRawOptions {
  host?: string;
  pauseOnConnect?: boolean;
  allowHalfOpen?: boolean;
  onPeer?: (peer: RawPeer) => void;
}

/** A raw node:net server on an ephemeral port that records every accepted peer. */
export async function listenRaw(options: ListenRawOptions = {}): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const server = net.createServer({ pauseOnConnect: options.pauseOnConnect ?? false, allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    const peer = wrapSocket(socket);
    peers.push(peer);
    options.onPeer?.(peer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host ?? '127.0.0.1', port: 0 }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    peers,
    close: async () => {
      for (const p of peers) p.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
