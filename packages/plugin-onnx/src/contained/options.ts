/**
 * The plugin's options for guests' models, read from the options or the environment, validated
 * up front, and the {@link ModelHost} they make.
 * @module
 * @internal
 */
import { totalmem } from 'node:os';
import { VaccelError } from '@vaccel/core';
import { DEFAULT_MAX_CONSTANT_BYTES, type IntakeLimits, MAX_CONSTANT_BYTES_ENV } from '../intake.js';
import { InProcessModels, type ModelHost } from '../model-host.js';
import type { SessionSettings } from '../session.js';
import { ModelRunners } from './pool.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Default cap on one run's outputs: the agent's default frame limit. */
export const DEFAULT_MAX_OUTPUT_BYTES = 256 * MiB;

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: MiB, g: GiB, t: 2 ** 40 };

/**
 * Parses a byte count: an integer, optionally with a binary unit (`512M`, `2GiB`, `2g`), or
 * `unlimited` (Infinity) where `unlimited` is allowed.
 * @throws VaccelError `EINVAL` naming `name`.
 */
export function parseBytes(value: string, name: string, unlimited = false): number {
  const text = value.trim().toLowerCase();
  if (unlimited && (text === 'unlimited' || text === 'infinity')) return Number.POSITIVE_INFINITY;
  const match = /^(\d+)\s*([kmgt]?)(?:i?b)?$/.exec(text);
  const bytes = match ? Number(match[1]) * UNITS[match[2]!]! : Number.NaN;
  if (!Number.isSafeInteger(bytes))
    throw new VaccelError(
      'EINVAL',
      `onnx: ${name} must be a byte count such as 2147483648, 512M or 2GiB${unlimited ? ', or unlimited' : ''}; got ${JSON.stringify(value)}`,
    );
  return bytes;
}

/** What {@link modelHost} reads. */
export interface ModelHostOptions {
  modelRunners?: number | undefined;
  modelMemoryLimit?: number | undefined;
  maxConstantBytes?: number | undefined;
  maxModelOutputBytes?: number | undefined;
}

function count(value: number | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < min)
    throw new VaccelError('EINVAL', `onnx: ${name} must be an integer ≥ ${min}, got ${value}`);
  return value;
}

/**
 * Intake limits from options or `VACCEL_MODEL_MAX_CONSTANT_BYTES` (a plain byte count, as the
 * TensorFlow converter reads it). @throws VaccelError `EINVAL` naming the option or variable.
 */
export function intakeOptions(
  options: ModelHostOptions,
  env: Readonly<Record<string, string | undefined>>,
): IntakeLimits {
  const raw = env[MAX_CONSTANT_BYTES_ENV]?.trim();
  const fromEnv = raw ? (/^\d+$/.test(raw) ? Number(raw) : Number.NaN) : undefined;
  const maxConstantBytes =
    count(options.maxConstantBytes, 'maxConstantBytes', 0) ??
    count(fromEnv, MAX_CONSTANT_BYTES_ENV, 0) ??
    DEFAULT_MAX_CONSTANT_BYTES;
  return { maxConstantBytes };
}

/**
 * The host for guests' models: {@link ModelRunners} (runner processes, started on first use), or
 * {@link InProcessModels} when `modelRunners` is 0.
 * @throws VaccelError `EINVAL` for a bad option, naming it.
 */
export function modelHost(
  options: ModelHostOptions,
  env: Readonly<Record<string, string | undefined>>,
  settings: SessionSettings,
  cores: number,
): ModelHost {
  const runners =
    count(options.modelRunners, 'modelRunners', 0) ??
    (env.VACCEL_MODEL_RUNNERS !== undefined && env.VACCEL_MODEL_RUNNERS !== ''
      ? count(Number(env.VACCEL_MODEL_RUNNERS), 'VACCEL_MODEL_RUNNERS', 0)!
      : Math.min(2, cores));
  const memoryLimit =
    options.modelMemoryLimit !== undefined
      ? options.modelMemoryLimit === Number.POSITIVE_INFINITY
        ? options.modelMemoryLimit
        : count(options.modelMemoryLimit, 'modelMemoryLimit', 1)!
      : env.VACCEL_MODEL_MEMORY_LIMIT
        ? parseBytes(env.VACCEL_MODEL_MEMORY_LIMIT, 'VACCEL_MODEL_MEMORY_LIMIT', true)
        : // Room for every runner at its cap within half the machine, and never more than 2 GiB each.
          Math.max(256 * MiB, Math.min(2 * GiB, Math.floor(totalmem() / (2 * Math.max(runners, 1)))));
  const maxOutputBytes =
    count(options.maxModelOutputBytes, 'maxModelOutputBytes', 0) ??
    (env.VACCEL_MODEL_OUTPUT_LIMIT
      ? parseBytes(env.VACCEL_MODEL_OUTPUT_LIMIT, 'VACCEL_MODEL_OUTPUT_LIMIT')
      : DEFAULT_MAX_OUTPUT_BYTES);
  if (runners === 0) return new InProcessModels(settings);
  return new ModelRunners({
    runners,
    memoryLimit,
    runner: {
      executionProviders: [...settings.executionProviders],
      // The runners share the cores the plugin was given.
      intraOpThreads: Math.max(1, Math.floor(settings.intraOpThreads / runners)),
      intake: settings.intake ?? { maxConstantBytes: DEFAULT_MAX_CONSTANT_BYTES },
      maxOutputBytes,
    },
  });
}
