import type Joi from 'joi';

/**
 * The machinery behind the configuration table (src/config.ts): each row names its environment variable, its
 * joi rule and where its value goes, so adding a variable is one edit. The schema, the `Config` type and the
 * mapping are all derived from the table.
 */
const VAR = Symbol('config variable');

export interface Var<T> {
  [VAR]: true;
  /** The joi rules of the environment variables this value is read from. */
  rules: Record<string, Joi.Schema>;
  read(values: Record<string, unknown>): T;
}

function variable<T>(rules: Record<string, Joi.Schema>, read: (v: Record<string, unknown>) => T): Var<T> {
  return { [VAR]: true, rules, read };
}

/** A value read from one variable as joi validated and converted it; `optional` ones may be unset. */
export const value = <T>(name: string, rule: Joi.Schema) =>
  variable<T>({ [name]: rule }, (v) => v[name] as T);
export const optional = <T>(name: string, rule: Joi.Schema) =>
  variable<T | undefined>({ [name]: rule }, (v) => v[name] as T | undefined);
/** A value made from several variables (or one, transformed). */
export const derived = <T>(rules: Record<string, Joi.Schema>, read: (v: Record<string, unknown>) => T) =>
  variable<T>(rules, read);

export type Table = { [key: string]: Var<unknown> | Table };
export type Resolve<T> = T extends Var<infer V> ? V : { [K in keyof T]: Resolve<T[K]> };

const isVar = (x: Var<unknown> | Table): x is Var<unknown> => VAR in x;

/** Every variable's rule, flattened, for the one joi object schema. */
export function rulesOf(table: Table): Record<string, Joi.Schema> {
  return Object.assign(
    {},
    ...Object.values(table).map((entry) => (isVar(entry) ? entry.rules : rulesOf(entry))),
  ) as Record<string, Joi.Schema>;
}

/** The typed configuration, read from validated values. */
export function readTable<T extends Table>(table: T, values: Record<string, unknown>): Resolve<T> {
  return Object.fromEntries(
    Object.entries(table).map(([key, entry]) => [
      key,
      isVar(entry) ? entry.read(values) : readTable(entry, values),
    ]),
  ) as Resolve<T>;
}
