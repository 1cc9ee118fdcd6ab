import Joi from 'joi';
import { USER_ID_PATTERN } from '../../auth/tokens';
import { BOARD_ID_PATTERN } from '../boards/schemas';

/** Idempotency keys: 1-128 visible ASCII characters (the joi rule and the OpenAPI document both use this). */
export const ACTION_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;
export const ACTION_ID = Joi.string().pattern(ACTION_ID_PATTERN, 'visible ASCII, at most 128 characters');

export interface UpdateBody {
  userId?: string;
  scoreIncrement: number;
  actionId?: string;
  boardId: string;
}

/** Players add 1..max to their own score; admins may apply any non-zero correction within the safe range. */
export function updateBodySchema(maxIncrement: number, admin: boolean): Joi.ObjectSchema<UpdateBody> {
  const increment = admin
    ? Joi.number().integer().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).invalid(0)
    : Joi.number().integer().min(1).max(maxIncrement);
  return Joi.object<UpdateBody>({
    userId: Joi.string().pattern(USER_ID_PATTERN, 'user id'),
    scoreIncrement: increment.required(),
    actionId: ACTION_ID,
    boardId: Joi.string().pattern(BOARD_ID_PATTERN, 'board id').default('global'),
  }).unknown(false);
}
