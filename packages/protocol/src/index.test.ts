import { describe, expect, it } from 'vitest';
import * as api from './index';
import * as admin from './generated/admin';
import * as benchmark from './generated/benchmark';
import * as chat from './generated/chat';
import * as commons from './generated/commons';
import * as tests from './generated/tests';

describe('package index', () => {
  it('re-exports every generated message type and enum', () => {
    const skip = new Set(['protobufFileName', 'protobufPackage']);
    for (const mod of [commons, tests, benchmark, admin, chat]) {
      for (const [name, value] of Object.entries(mod)) {
        if (skip.has(name)) continue;
        expect(api, `index.ts does not export ${name}`).toHaveProperty(name);
        expect((api as Record<string, unknown>)[name]).toBe(value);
      }
    }
    expect(api.protobufPackage).toBe('fastport');
  });

  it('exports the registry, router and helpers', () => {
    for (const name of [
      'PacketRegistry',
      'PacketId',
      'Messages',
      'defaultRegistry',
      'createDefaultRegistry',
      'ProtocolError',
      'Router',
      'encodePacket',
      'decodePacket',
      'encodeMessage',
      'decodeMessage',
      'send',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
  });
});
