/**
 * Idle-connection cost: what N connections that send nothing cost the server
 * (RSS from /proc, JS heap from the server's own snapshot after a full GC).
 *
 * A process may open at most 20,000 files here, so the N connections come
 * from several client processes (idle-child.ts, forked), each holding at most
 * --per-process of them, bound round robin to several 127.0.0.x source
 * addresses (one address has about 28,000 ephemeral ports).
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { EngineRequest } from '@fastport/native-io';
import { Client } from '@fastport/session';
import { track } from './children';
import { framingOption } from './payload';
import type { Framing } from './types';

export interface IdleChildConfig {
  host: string;
  port: number;
  count: number;
  sources: string[];
  clientEngine: EngineRequest;
  framing: Framing;
  maxFrame: number;
  concurrency: number;
}

export type IdleChildMessage =
  | { type: 'connected'; connected: number; failed: number; errors: Record<string, number>; lost: number }
  | { type: 'fatal'; message: string };

/** Source addresses 127.0.0.2 … for `n` sources (127.0.0.1 is left to the server's own traffic). */
export function sourceAddresses(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = 2 + i; // 127.0.0.2 upward, spilling into the third octet past .255
    out.push(`127.0.${Math.floor(v / 256)}.${v % 256}`);
  }
  return out;
}

/** Splits n connections over processes of at most perProcess each. */
export function splitConnections(n: number, perProcess: number): number[] {
  const processes = Math.max(1, Math.ceil(n / Math.max(1, perProcess)));
  const base = Math.floor(n / processes);
  return Array.from({ length: processes }, (_, i) => base + (i < n % processes ? 1 : 0));
}

export interface IdleGroup {
  connected: number;
  failed: number;
  lost: number;
  errors: Record<string, number>;
  seconds: number;
  close(): Promise<void>;
}

/** Forks the client processes and resolves once each has opened (or failed) its share. */
export async function openIdleConnections(
  counts: number[],
  base: Omit<IdleChildConfig, 'count'>,
): Promise<IdleGroup> {
  const t0 = performance.now();
  const children: ChildProcess[] = [];
  const results = await Promise.all(
    counts.map((count, i) => {
      // each process takes a rotation of the sources so the first address is not overloaded
      const sources = base.sources.length > 0 ? [...base.sources.slice(i % base.sources.length), ...base.sources.slice(0, i % base.sources.length)] : [];
      const cfg: IdleChildConfig = { ...base, sources, count };
      const child = fork(path.join(__dirname, 'idle-child.js'), [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      track(child);
      return new Promise<Extract<IdleChildMessage, { type: 'connected' }>>((resolve, reject) => {
        child.once('message', (msg: IdleChildMessage) => {
          if (msg.type === 'connected') resolve(msg);
          else reject(new Error(`idle client ${i}: ${msg.message}`));
        });
        child.once('exit', (code) => reject(new Error(`idle client ${i} exited with code ${code}`)));
      });
    }),
  ).catch(async (err: unknown) => {
    for (const c of children) c.kill('SIGKILL');
    throw err;
  });
  const seconds = (performance.now() - t0) / 1000;
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    connected: results.reduce((a, r) => a + r.connected, 0),
    failed: results.reduce((a, r) => a + r.failed, 0),
    lost: results.reduce((a, r) => a + r.lost, 0),
    errors,
    seconds,
    close: async () => {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              const timer = setTimeout(() => {
                c.kill('SIGKILL');
                resolve();
              }, 10_000);
              c.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              c.send({ type: 'close' });
            }),
        ),
      );
    },
  };
}

/** The forked client process: opens `count` connections, reports, holds them until told to close. */
export async function idleChildMain(cfgText: string): Promise<void> {
  const send = (m: IdleChildMessage) => process.send?.(m);
  const cfg = JSON.parse(cfgText) as IdleChildConfig;
  const client = new Client({ engine: cfg.clientEngine, framing: framingOption(cfg.framing, cfg.maxFrame) });
  const errors: Record<string, number> = {};
  let connected = 0;
  let failed = 0;
  let lost = 0;
  let closing = false;
  client.on('close', () => {
    if (!closing) lost++;
  });
  let next = 0;
  const worker = async () => {
    while (next < cfg.count) {
      const i = next++;
      const localAddress = cfg.sources.length > 0 ? cfg.sources[i % cfg.sources.length] : undefined;
      try {
        await client.connect({ host: cfg.host, port: cfg.port, timeoutMs: 30_000, ...(localAddress ? { localAddress } : {}) });
        connected++;
      } catch (err) {
        failed++;
        const code = (err as { code?: string }).code ?? 'connect';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, cfg.concurrency) }, worker));
  } catch (err) {
    send({ type: 'fatal', message: (err as Error).message });
    process.exit(1);
  }
  send({ type: 'connected', connected, failed, errors, lost });
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'close') return;
    closing = true;
    client.close(2000).finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
}
