/** Entry of an idle-connection client process (forked by idle.ts). */
import { idleChildMain } from './idle';

idleChildMain(process.argv[2] ?? '{}').catch((err: unknown) => {
  process.send?.({ type: 'fatal', message: (err as Error).message });
  process.exit(1);
});
