import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock';
import { fuzzPlan, prng, runFuzz } from './fuzz';
import { closedPort, connectRaw, connectRawError, listenRaw } from './peers';
import { waitFor } from './wait';

describe('waitFor', () => {
  it('resolves when the predicate holds, rejects naming what it waited for, fails fast when the predicate throws', async () => {
    let n = 0;
    await waitFor(() => ++n >= 3, 'three polls');
    expect(n).toBe(3);
    await expect(waitFor(() => false, 'never', 20)).rejects.toThrow('timed out after 20 ms waiting for never');
    await expect(waitFor(() => false, 20, 'never either')).rejects.toThrow('timed out after 20 ms waiting for never either');
    await expect(
      waitFor(() => {
        throw new Error('closed early');
      }, 'x'),
    ).rejects.toThrow('closed early');
  });
});

describe('raw peers', () => {
  it('connect, send, readUntil; a closed port refuses', async () => {
    const server = await listenRaw({ onPeer: (p) => p.socket.on('data', (d) => p.socket.write(d)) });
    try {
      const peer = await connectRaw(server.port);
      peer.send('hello');
      expect((await peer.readUntil(5)).toString()).toBe('hello');
      peer.socket.end();
      await peer.closed;
      expect(peer.isClosed).toBe(true);
      expect(server.peers.length).toBe(1);
    } finally {
      await server.close();
    }
    expect(await connectRawError(await closedPort())).toBe('ECONNREFUSED');
  });

  it('readUntil fails at once when the socket closes first', async () => {
    const server = await listenRaw({ onPeer: (p) => p.socket.end('ab') });
    try {
      const peer = await connectRaw(server.port);
      await expect(peer.readUntil(10, 'ten bytes', 5000)).rejects.toThrow(/closed after 2 bytes while waiting for ten bytes/);
    } finally {
      await server.close();
    }
  });
});

describe('ManualClock', () => {
  it('fires repeating timers at each due time, in time order, with now() at that time', () => {
    const clock = new ManualClock(0);
    const seen: string[] = [];
    const a = clock.every(10, () => seen.push(`a@${clock.now()}`));
    clock.every(25, () => seen.push(`b@${clock.now()}`));
    clock.advance(50);
    expect(seen).toEqual(['a@10', 'a@20', 'b@25', 'a@30', 'a@40', 'a@50', 'b@50']);
    a.cancel();
    clock.advance(30);
    expect(seen.slice(7)).toEqual(['b@75']);
    expect(clock.now()).toBe(80);
  });
});

describe('fuzz plans', () => {
  it('fixed seed and count unless overridden; a failure names how to reproduce it', async () => {
    const plan = fuzzPlan('framing decoder', { seed: 7, cases: 100 }, {});
    expect(plan).toMatchObject({ name: 'FRAMING_DECODER', seed: 7, cases: 100 });
    expect(plan.random()()).toBe(prng(7)());
    const env = { FASTPORT_FUZZ_SEED_FRAMING_DECODER: '9', FASTPORT_FUZZ_CASES: '5' };
    expect(fuzzPlan('framing decoder', { seed: 7, cases: 100 }, env)).toMatchObject({ seed: 9, cases: 5 });
    expect(() => fuzzPlan('x', { seed: 1, cases: 1 }, { FASTPORT_FUZZ_CASES: 'many' })).toThrow(/FASTPORT_FUZZ_CASES=many/);
    await expect(
      runFuzz(plan, (at) => {
        for (let i = 0; i < plan.cases; i++) {
          at(i);
          if (i === 42) throw new Error('boom');
        }
      }),
    ).rejects.toThrow(/seed 7, 100 cases, failed at case 42 \(reproduce: FASTPORT_FUZZ_SEED_FRAMING_DECODER=7 FASTPORT_FUZZ_CASES_FRAMING_DECODER=100\)\nboom/);
  });
});
