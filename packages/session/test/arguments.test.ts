import { describe, expect, it } from 'vitest';
import { Client, Server } from '../src';

// The API checks its arguments where they are passed, with Node's codes, so that a
// node:net-style call either works or says what is expected.
describe('arguments at the API boundary', () => {
  it("client.connect(port, host) works as node:net's does, with 'localhost' too", async () => {
    const server = new Server({ engine: 'node', memoryBudget: false });
    const { port } = await server.listen(0, '127.0.0.1');
    const client = new Client({ engine: 'node', memoryBudget: false });
    try {
      const a = await client.connect(port, '127.0.0.1');
      const b = await client.connect(port, 'localhost', { timeoutMs: 5000 });
      expect(a.state).toBe('open');
      expect(b.state).toBe('open');
    } finally {
      await client.close(100);
      await server.close(100);
    }
  });

  it('wrong arguments reject with ERR_INVALID_ARG_TYPE / ERR_SOCKET_BAD_PORT and say what is expected', async () => {
    const client = new Client({ engine: 'node', memoryBudget: false });
    const server = new Server({ engine: 'node', memoryBudget: false });
    try {
      const cases: [Promise<unknown>, string, RegExp][] = [
        [client.connect('9000' as never), 'ERR_INVALID_ARG_TYPE', /"options" argument must be of type object or a port number\. Received type string \('9000'\)/],
        [client.connect(9000, 1 as never), 'ERR_INVALID_ARG_TYPE', /"host" argument must be of type string/],
        [client.connect({ host: 5, port: 9000 } as never), 'ERR_INVALID_ARG_TYPE', /"options\.host" argument must be of type string/],
        [client.connect({ host: '127.0.0.1', port: '9000' } as never), 'ERR_INVALID_ARG_TYPE', /"options\.port" argument must be of type number/],
        [client.connect(70000, '127.0.0.1'), 'ERR_SOCKET_BAD_PORT', /port should be >= 1 and < 65536/],
        [server.listen('x' as never), 'ERR_INVALID_ARG_TYPE', /"port" argument must be of type number/],
      ];
      for (const [p, code, message] of cases) {
        const err = await p.then(
          () => undefined,
          (e: unknown) => e as Error & { code?: string },
        );
        expect(err, String(message)).toBeInstanceOf(Error);
        expect(err!.code).toBe(code);
        expect(err!.message).toMatch(message);
      }
    } finally {
      await client.close(100);
      await server.close(100);
    }
  });
});
