/** Worker-thread entry: one LoadThread driven by messages from the coordinator (threads.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { LoadThread } from './load';
import { COUNTER_SLOTS, type LoadConfig, type MainToWorker, type WorkerToMain } from './types';

interface WorkerInput {
  config: LoadConfig;
  control: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

if (parentPort === null) throw new Error('fastport-bench worker started outside a worker thread');
const port = parentPort;
const input = workerData as WorkerInput;
const post = (msg: WorkerToMain) => port.postMessage(msg);

async function run(): Promise<void> {
  const control = new Int32Array(input.control);
  const counters = new Float64Array(input.counters, input.config.threadIndex * COUNTER_SLOTS * 8, COUNTER_SLOTS);
  let load: LoadThread;
  try {
    load = new LoadThread(input.config, control, counters);
  } catch (err) {
    post({ type: 'fatal', message: (err as Error).message });
    return;
  }
  const { connected, failed } = await load.connect();
  post({ type: 'ready', connected, failed, clientEngine: load.engineKind, reason: load.engineReason, errorCodes: load.connectErrors });
  port.on('message', (msg: MainToWorker) => {
    if (msg.type === 'go') load.go();
    else if (msg.type === 'pause') load.pause();
    else if (msg.type === 'resume') load.resume();
    else if (msg.type === 'sample') post({ type: 'sample', ...load.sample() });
    else if (msg.type === 'stop') {
      load.stop().then(
        (result) => {
          post({ type: 'result', result });
          port.close();
        },
        (err: unknown) => post({ type: 'fatal', message: (err as Error).message }),
      );
    }
  });
}

run().catch((err: unknown) => post({ type: 'fatal', message: (err as Error).stack ?? String(err) }));
