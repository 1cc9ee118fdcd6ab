import type { Measured } from './load';

/** What every scenario gets: the run's settings and the shared 10,000-user database. */
export interface BenchContext {
  quick: boolean;
  runId: string;
  redisUrl: string;
  /** Every Redis key of this run starts with it (deleted at the end). */
  prefix: string;
  jwtSecret: string;
  workers: number;
  profileDir?: string;
  /** Seconds of measured load per run, and of unmeasured warm-up before it. */
  loadS: number;
  warmupS: number;
  /** Interleaved repetitions of each comparison (the median is reported). */
  rounds: number;
  main: {
    url: string;
    userIds: string[];
    tokens: string[];
    /** A database admin and a player it moves, for the stream's change driver. */
    adminToken: string;
    tickerId: string;
  };
  /** Names a database for this run (scoreboard_bench_<tag>_<suffix>); the runner drops them all at the end. */
  database: (suffix: string) => string;
  /** Runs `fn` when the runner cleans up (also on Ctrl-C): for what lives outside MySQL and Redis. */
  onCleanup: (fn: () => Promise<void>) => void;
  log: (msg: string) => void;
}

/** One line of the results table. */
export interface Row extends Partial<Measured> {
  scenario: string;
  variant: string;
  unit: string;
  /** Resident memory of the process under test (and its workers) after the run, in MB. */
  rssMb?: number;
  /** This row's throughput (or latency, for streams) over its baseline's. */
  ratio?: number;
  note?: string;
}

export interface Target {
  scenario: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface ScenarioResult {
  rows: Row[];
  targets: Target[];
  /** Anything else worth keeping in the JSON (sweeps, timings, settings). */
  details?: Record<string, unknown>;
}

export const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
