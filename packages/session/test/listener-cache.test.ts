import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ListenerCache } from '../src/listener-cache';

// ListenerCache stands in for emitter.emit('frame', ...) on the per-frame
// path; every case here is something emit() does that the cache must match.
describe('ListenerCache (the per-frame event, called without emit)', () => {
  const setup = () => {
    const e = new EventEmitter();
    const cache = new ListenerCache<number, string>(e, 'frame');
    const calls: string[] = [];
    return { e, cache, calls };
  };

  it('sees listeners added and removed after it was created', () => {
    const { e, cache, calls } = setup();
    expect(cache.call(1, 'a')).toBe(false);
    const l = (n: number, s: string) => calls.push(`l${n}${s}`);
    e.on('frame', l);
    expect(cache.call(1, 'a')).toBe(true);
    e.off('frame', l);
    expect(cache.call(2, 'b')).toBe(false);
    expect(calls).toEqual(['l1a']);
  });

  it('calls several listeners in order with the emitter as this', () => {
    const { e, cache, calls } = setup();
    e.on('frame', function (this: unknown, n: number) {
      calls.push(`a${n}${this === e}`);
    });
    e.prependListener('frame', (n: number) => calls.push(`p${n}`));
    e.on('frame', (n: number) => calls.push(`b${n}`));
    cache.call(7, 'x');
    expect(calls).toEqual(['p7', 'a7true', 'b7']);
  });

  it('once() listeners run once', () => {
    const { e, cache, calls } = setup();
    e.once('frame', (n: number) => calls.push(`once${n}`));
    e.on('frame', (n: number) => calls.push(`on${n}`));
    cache.call(1, '');
    cache.call(2, '');
    expect(calls).toEqual(['once1', 'on1', 'on2']);
  });

  it('a listener that throws stops the rest, and the error reaches the caller', () => {
    const { e, cache, calls } = setup();
    e.on('frame', () => {
      throw new Error('boom');
    });
    e.on('frame', () => calls.push('second'));
    expect(() => cache.call(1, '')).toThrow('boom');
    expect(calls).toEqual([]);
  });

  it('survives removeAllListeners() and removeAllListeners("newListener")', () => {
    const { e, cache, calls } = setup();
    e.on('frame', () => calls.push('old'));
    cache.call(1, '');
    e.removeAllListeners();
    e.on('frame', () => calls.push('new'));
    cache.call(2, '');
    e.removeAllListeners('newListener');
    e.removeAllListeners('frame');
    e.on('frame', () => calls.push('newer'));
    cache.call(3, '');
    expect(calls).toEqual(['old', 'new', 'newer']);
  });

  it('a listener added from inside a listener runs from the next call, as with emit', () => {
    const { e, cache, calls } = setup();
    e.once('frame', () => {
      calls.push('first');
      e.on('frame', () => calls.push('added'));
    });
    cache.call(1, '');
    cache.call(2, '');
    expect(calls).toEqual(['first', 'added']);
  });
});
