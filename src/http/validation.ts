import type Joi from 'joi';
import { badRequest } from './errors';

/** Validates with joi and turns every problem into one 400 listing each invalid field. */
export function validate<T>(schema: Joi.Schema<T>, value: unknown, what = 'body', convert = false): T {
  const { error, value: valid } = schema.validate(value, { abortEarly: false, convert });
  if (error) {
    throw badRequest(`The request ${what} is invalid.`, {
      errors: error.details.map((d) => ({ field: d.path.join('.') || what, message: d.message })),
    });
  }
  return valid;
}
