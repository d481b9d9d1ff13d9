/**
 * @fastport/test-utils: what the FastPort packages' tests share. Runner
 * agnostic (no vitest import here: child fixtures may load it); the vitest
 * glue for the engine matrix is '@fastport/test-utils/vitest'.
 */
export { WAIT_MS, eventually, nextTurn, pollValue, sleep, turns, waitFor, waitForOnTurns, withDeadline } from './wait';
export {
  closedPort,
  connectRaw,
  connectRawError,
  listenRaw,
  wrapSocket,
  type ConnectRawOptions,
  type ListenRawOptions,
  type RawPeer,
  type RawServer,
} from './peers';
export { JsonChild, TS_REGISTER, findExecutable, runChild, type JsonChildOptions, type RunOptions, type RunResult } from './child';
export {
  ALL_ENGINES,
  engineCase,
  engineMatrix,
  expectedEngines,
  platformEngines,
  selectEngines,
  strictEngines,
  type Availability,
  type AvailabilityProbe,
  type EngineCase,
  type EngineKind,
  type EngineSelection,
  type MatrixOptions,
} from './engines';
export { ManualClock } from './clock';
export { fuzzPlan, prng, runFuzz, type FuzzPlan } from './fuzz';
